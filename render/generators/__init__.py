"""Scene generators: functions `(rng, index) -> SceneSpec`, selected in gin with `dataset.generator`.

Importing this package registers every generator with gin.
"""

from render.generators import (
    enr,  # noqa: F401  (registers @enr_object, ENR's rotation / translation / roto-translation sets)
    fruit,  # noqa: F401,E402  (registers the fruit still-life twin)
    gqn,  # noqa: F401,E402  (registers the GQN rooms and Shepard-Metzler generators)
    rendernet,  # noqa: F401  (registers @rendernet_object)
    selfstudy,  # noqa: F401  (registers @selfstudy_scene)
)
