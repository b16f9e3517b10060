"""Scene generators: functions `(rng, index) -> SceneSpec`, selected in gin with `dataset.generator`.

Importing this package registers every generator with gin.
"""

from render.generators import selfstudy  # noqa: F401  (registers @selfstudy_scene)
