"""The shipped urgency configuration, with and without its learned backstop, for the urgency
tests of each round."""

import dataclasses

import pytest

from helpdesk.services.routing.urgency import load_urgency_config


@pytest.fixture(scope="module")
def shipped():
    return load_urgency_config(None)


@pytest.fixture(scope="module")
def no_model(shipped):
    """The phrase lists alone: the shipped configuration without the learned backstop."""
    return dataclasses.replace(shipped, model=None)
