"""Frontends: turn a saved file or an architecture description into a torch.nn.Module."""
