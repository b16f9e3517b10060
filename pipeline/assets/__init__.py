"""Real assets from the package registries: fetching, indexing, and the readers of their file formats.

The index's data model and `load_index` live in `core.asset_index` (render/ reads the index through it);
they are re-exported here so that `pipeline.assets` is the one import for code that fetches and indexes.
"""

from core.asset_index import (  # noqa: F401
    FETCH_COMMAND,
    AssetError,
    AssetIndex,
    AssetMissingError,
    EnvironmentAsset,
    IndexMissingError,
    MeshAsset,
    TextureAsset,
    UnknownClassError,
    load_index,
)
from pipeline.assets.sources import (  # noqa: F401
    FETCH_SOURCES,
    DebianPackages,
    FetchError,
    build_index,
    catalogue_licence,
    debian_copyright_licences,
    fetch,
    index_catalogue,
    index_folder,
    index_shapenet,
    main,
    parse_sources,
    remove_source,
)
