"""Multi-layer perceptrons for the encoder and the decoder."""

from torch import nn

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "logistic": nn.Sigmoid}


def make_mlp(n_in, hidden_layer_sizes, n_out, activation="relu"):
    """``Linear -> act -> ... -> Linear`` with the given hidden widths."""
    layers, width = [], n_in
    for size in hidden_layer_sizes:
        layers += [nn.Linear(width, size), _ACTIVATIONS[activation]()]
        width = size
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)
