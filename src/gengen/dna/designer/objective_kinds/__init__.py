"""The kinds of design objective, one module each, registered in :data:`gengen.registry.OBJECTIVE_KINDS`.

A kind module holds ``parse(spec) -> spec`` (check an ``--objective KIND=SOURCE,...`` spec's own keys
and name the files it reads; read nothing), ``build(spec, context) -> Objective`` (load it) and
optionally ``trained_length(spec) -> (name, length) | None`` (the length its model was trained on,
read without loading it). :mod:`.motif` (a PWM), :mod:`.predictor` (a ``dna-train-predictor`` CNN),
:mod:`.model` (any TorchScript model) and :mod:`.python` (the user's own factory) are built in.
"""
