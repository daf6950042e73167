"""muP experiments: the coordinate check (activation sizes vs width) and its `lmscale mup` command.

The parametrisation itself is a model option (`lmscale.model.parametrization`); this lab checks it."""
