"""The SyncroBoard gateway's shared layer: one package per concern, imported the same way on Lambda
(from the layer's ``python/`` folder) and locally (``layers/common`` on ``sys.path``)."""
