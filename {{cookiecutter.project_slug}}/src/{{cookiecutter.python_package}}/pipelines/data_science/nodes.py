"""Nodes that train a linear model of shuttle prices and evaluate it."""

import logging

import pandas as pd
from sklearn.linear_model import LinearRegression
from sklearn.metrics import max_error, mean_absolute_error, r2_score
from sklearn.model_selection import train_test_split

logger = logging.getLogger(__name__)


def split_data(
    data: pd.DataFrame, parameters: dict
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    """Split the features and the price into training and test sets."""
    features = data[parameters["features"]]
    price = data["price"]
    x_train, x_test, y_train, y_test = train_test_split(
        features,
        price,
        test_size=parameters["test_size"],
        random_state=parameters["random_state"],
    )
    return x_train, x_test, y_train, y_test


def train_model(x_train: pd.DataFrame, y_train: pd.Series) -> LinearRegression:
    """Fit a linear regression of the price on the features."""
    regressor = LinearRegression()
    regressor.fit(x_train, y_train)
    return regressor


def evaluate_model(
    regressor: LinearRegression, x_test: pd.DataFrame, y_test: pd.Series
) -> dict[str, float]:
    """Score the model on the test set: R², mean absolute error, max error."""
    y_pred = regressor.predict(x_test)
    metrics = {
        "r2_score": float(r2_score(y_test, y_pred)),
        "mae": float(mean_absolute_error(y_test, y_pred)),
        "max_error": float(max_error(y_test, y_pred)),
    }
    logger.info(
        "Model has a coefficient R^2 of %.3f on test data.", metrics["r2_score"]
    )
    return metrics
