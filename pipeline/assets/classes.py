"""Class names for indexed meshes: Sweet Home 3D furniture rules and ShapeNetCore synset names.

Sweet Home 3D's catalogue categories are rooms ("Living room", "Kitchen", ...), not object kinds, so the class
of a piece comes from its English name, then its tags, then its id, through the keyword table below. The
name's head noun wins: words are read from the right ("Table lamp" is a lamp, "Coffee table" a table), and
for "X with Y" X is read first ("Chair with cushion" is a chair). The classes form a small stable set of
lowercase names (`SWEETHOME3D_CLASSES`); anything that matches no keyword is `other`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: Class -> keywords (single lowercase words or space-separated phrases). Phrases are tried before words.
_CLASS_KEYWORDS: dict[str, tuple[str, ...]] = {
    "chair": ("chair", "chairs", "armchair", "stool", "seat", "ottoman", "puff", "wheelchair", "bench", "lounge"),
    "sofa": ("sofa", "couch", "settee"),
    "bed": ("bed", "crib", "futon", "mattress", "hammock", "tatami", "sleeping bag"),
    "table": ("table", "desk", "workbench", "nightstand", "island", "island extension"),
    "cabinet": (
        "cabinet", "cupboard", "wardrobe", "closet", "dresser", "drawers", "chest", "bookcase", "bookshelf",
        "shelves", "shelf", "shelving", "vanity", "locker", "safe", "stand", "tv stand", "knife stand",
        "contemporary living room",
    ),
    "lamp": (
        "lamp", "light", "lights", "lantern", "lamppost", "chandelier", "candle", "spotlight", "flashlight",
        "fluorescent", "candelabra",
    ),
    "plant": (
        "plant", "plants", "tree", "cactus", "bamboo", "orchids", "flowers", "tulips", "lily", "yucca", "ficus",
        "bonsai", "bush", "hedge", "palm", "pine", "maple", "cypress", "poplar", "acacia", "beech",
        "spathiphyllum", "blossom", "flower box", "plant box",
    ),
    "fruit": ("apple", "apples", "fruit", "fruits", "bowl with fruits", "banana", "orange", "pear"),
    "food": (
        "bread", "butter", "hamburger", "hot dog", "cake", "cupcake", "cup cake", "steak", "fries", "salad",
        "sugar", "roasted chicken", "yogurt", "milk", "sushi tray", "birthday cake", "spice tower",
    ),
    "vase": ("vase", "jar", "pottery", "old jar"),
    "bottle": ("bottle", "flacon", "tetrapak"),
    "kitchenware": (
        "cup", "mug", "glass", "plate", "bowl", "teapot", "pan", "kettle", "fork", "knife", "spoon", "cutlery",
        "creamer", "tray", "shaker", "chopping board", "utensils", "kitchen tools", "tool", "coffee press",
        "squeezer", "oil servers", "bread box", "baby bottle", "scale", "kitchen scale",
    ),
    "animal": (
        "horse", "dog", "cat", "deer", "bulldog", "chicken", "rabbit", "fish", "aquarium", "siamese cat",
    ),
    "person": ("male", "female", "boy", "girl", "mannequin", "human", "people", "woman", "man"),
    "vehicle": (
        "car", "truck", "bus", "bike", "bicycle", "scooter", "motorbike", "motorcycle", "van", "suv", "tricycle",
        "stroller", "fork lift", "rowboat", "sedan", "beetle", "chevrolet", "peugeot", "renault", "seat leon",
        "ford focus", "yamaha", "skateboard", "city bus", "smart car",
    ),
    "appliance": (
        "oven", "fridge", "refrigerator", "freezer", "microwave", "washing machine", "dryer", "stove", "cooker",
        "cooktop", "hood", "range hood", "toaster", "blender", "mixer", "coffee machine", "coffee maker",
        "coffee brewer", "boiler", "heater", "radiator", "fan", "air conditioning", "furnace", "water cooler",
        "deep fryer", "sandwich maker", "grill", "electronic scale", "ceiling fan", "washer", "hob",
    ),
    "electronics": (
        "tv", "television", "laptop", "computer", "phone", "telephone", "iphone", "speaker", "radio", "camera",
        "printer", "stereo", "amplifier", "headphones", "tablet", "playstation", "joystick", "projector",
        "imac", "ibook", "dvd", "keyboard", "mp3", "intercom", "cctv", "thermometer", "smoke detector",
        "video projector", "mobile phone", "wireless phone", "mac",
    ),
    "toy": (
        "toy", "puzzle", "doll", "teddy bear", "rubik's cube", "rubik", "xylophone", "rocking horse", "biplane",
        "car model", "toy train", "wood toy", "doll house", "card game", "chessboard", "dart game",
    ),
    "sanitary": (
        "toilet", "toilets", "washbasin", "bath", "bathtub", "shower", "bidet", "urinal", "basin", "sink",
        "jacuzzi", "lavatory", "potty", "faucet", "shower stall",
    ),
    "door": ("door", "doors", "garage door", "elevator door"),
    "window": ("window", "shutter", "blind", "blinds"),
    "clothing": (
        "clothes", "shoes", "slippers", "bootie", "suit", "dress", "jacket", "skirt", "trousers", "short",
        "cap", "hat", "helmet", "glove", "sneakers", "mocassin", "folded clothes", "hanging clothes",
        "sunglasses", "glasses", "watch", "ring", "handbag",
    ),
    "sport": (
        "ball", "basketball", "soccer ball", "racket", "bat", "goal", "treadmill", "fitness", "indoor bike",
        "punching ball", "trampoline", "table tennis", "football table", "pool table", "basketball net",
        "abdominal bench", "flipper", "fitness tower",
    ),
    "tool": (
        "hammer", "saw", "drill", "screwdriver", "grinder", "pliers", "shovel", "broom", "wheelbarrow", "mower",
        "ladder", "step ladder", "tape measure", "extinguisher", "hose reel",
        "tape", "toilet brush", "cutting pliers",
    ),
    "storage": (
        "box", "crate", "barrel", "basket", "suitcase", "trunk", "trunck", "backpack", "briefcase", "container",
        "shipping container", "bin", "dustbin", "trashcan", "trash can", "recycling bin", "mailbox",
        "letters box", "pallet", "clothes basket", "shopping basket",
    ),
    "decoration": (
        "frame", "clock", "cuckoo clock", "rug", "ashtray", "hashtray", "carpet", "doormat", "bathmat", "curtain",
        "shower curtain", "towel", "gift", "book", "newspaper", "screen", "fountain", "snowman", "artwork",
        "stone lantern", "rock", "wood logs",
    ),
    "instrument": ("piano", "guitar", "grand piano", "upright piano", "midi keyboard"),
    "toiletry": ("comb", "cosmetics", "lipstick", "lip stick", "soap", "sponge", "brush", "makeup", "toothbrush"),
    "stationery": (
        "pencil", "penbox", "marker", "text marker", "whiteboard", "white board", "ruler", "stapler", "scissors",
        "calendar", "letter tray", "pen",
    ),
    "electrical": (
        "plug", "socket", "switch", "outlet", "dimmer", "antenna", "wall socket", "wall double socket",
        "entry bell ring", "entry speech unit",
    ),
    "structure": (
        "railing", "fence", "column", "staircase", "escalator", "elevator", "chimney", "fireplace", "pool",
        "swimming pool", "sidewalk", "crossing", "rails", "parking slot", "arrow", "cone", "fire hydrant",
        "diving board", "hut", "tent", "barnum", "canopy", "umbrella", "sign", "emergency sign",
    ),
}

#: Keywords that only count when read from a piece's tags (too ambiguous in names).
_TAG_ONLY: dict[str, str] = {
    "seat": "chair",
    "animal": "animal",
    "human": "person",
    "people": "person",
    "car": "vehicle",
    "food": "food",
    "cleaning": "tool",
    "storage": "storage",
    "appliance": "appliance",
    "electronics": "electronics",
    "plant": "plant",
    "flowers": "plant",
    "clothes": "clothing",
    "jewelry": "clothing",
    "toy": "toy",
    "sport": "sport",
    "tool": "tool",
}

#: Names whose head noun misleads the rules: exact lowercase name -> class.
_NAME_OVERRIDES: dict[str, str] = {
    "seat leon": "vehicle",
    "socket": "clothing",
    "table fan": "appliance",
    "table tennis bat": "sport",
    "table tennis": "sport",
    "pool table": "sport",
    "football table": "sport",
    "bowl with fruits": "fruit",
    "bowl with salad": "food",
    "piano bench": "chair",
    "chair ottoman": "chair",
    "armchair ottoman": "chair",
    "knife stand": "kitchenware",
    "spray bottle": "tool",
    "child swing": "sport",
    "children game": "sport",
    "child hut": "sport",
    "seesaw": "sport",
    "sandpit": "sport",
    "kitchen tools": "kitchenware",
    "plate, glass and cutlery": "kitchenware",
    "plate, glasses and cutlery": "kitchenware",
    "towel rack": "sanitary",
    "toilet paper dispenser": "sanitary",
    "paper towel holder": "kitchenware",
    "wall hanger": "decoration",
    "clothes hanger": "decoration",
    "wire coathanger": "decoration",
    "clothes rack": "cabinet",
    "clothes horse": "tool",
    "number lock": "tool",
    "dog house": "storage",
    "stone lantern": "decoration",
    "wall lamp artwork": "lamp",
    "little bank": "chair",
    "wood bank": "chair",
}

SWEETHOME3D_CLASSES: tuple[str, ...] = tuple(sorted({*_CLASS_KEYWORDS, "other"}))

_WORD_TO_CLASS: dict[str, str] = {}
_PHRASES: list[tuple[tuple[str, ...], str]] = []
for _cls, _words in _CLASS_KEYWORDS.items():
    for _w in _words:
        parts = tuple(_w.split())
        if len(parts) == 1:
            if _WORD_TO_CLASS.setdefault(_w, _cls) != _cls:
                raise RuntimeError(f"keyword {_w!r} is listed for two classes")
        else:
            _PHRASES.append((parts, _cls))
_PHRASES.sort(key=lambda p: -len(p[0]))  # longest phrase first


def _words(text: str, split_camel: bool = False) -> list[str]:
    """Lowercase words of a name, or of a camelCase/snake_case id with `split_camel`
    ("bedsideTable2" -> ["bedside", "table"])."""
    if split_camel:
        text = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", text)
    return re.findall(r"[a-z']+", text.lower())


def _head_class(words: list[str]) -> str | None:
    """Class of the right-most keyword or phrase in `words`, or None."""
    for end in range(len(words), 0, -1):
        for phrase, cls in _PHRASES:
            n = len(phrase)
            if end - n >= 0 and tuple(words[end - n : end]) == phrase:
                return cls
        cls = _WORD_TO_CLASS.get(words[end - 1])
        if cls is not None:
            return cls
    return None


def sweethome3d_class(name: str, tags: Iterable[str] = (), piece_id: str = "") -> str:
    """Map a Sweet Home 3D piece to one of `SWEETHOME3D_CLASSES`.

    Args:
        name: the English catalogue name ("Oak chair").
        tags: the catalogue tags ("Blend Swap", "Seat").
        piece_id: the id after '#' ("oakChair"), used last.
    """
    key = " ".join(_words(name))
    if key in _NAME_OVERRIDES:
        return _NAME_OVERRIDES[key]
    words = _words(name)
    if "with" in words:
        cut = words.index("with")
        cls = _head_class(words[:cut]) or _head_class(words[cut + 1 :])
    else:
        cls = _head_class(words)
    if cls is not None:
        return cls
    for tag in tags:
        tag_words = _words(tag)
        cls = _head_class(tag_words) or _TAG_ONLY.get(" ".join(tag_words))
        if cls is not None:
            return cls
    return _head_class(_words(piece_id, split_camel=True)) or "other"


#: ShapeNetCore.v2 synset id -> class name (the 55 synsets of the core release).
SHAPENET_SYNSETS: dict[str, str] = {
    "02691156": "airplane",
    "02747177": "trash_bin",
    "02773838": "bag",
    "02801938": "basket",
    "02808440": "bathtub",
    "02818832": "bed",
    "02828884": "bench",
    "02843684": "birdhouse",
    "02871439": "bookshelf",
    "02876657": "bottle",
    "02880940": "bowl",
    "02924116": "bus",
    "02933112": "cabinet",
    "02942699": "camera",
    "02946921": "can",
    "02954340": "cap",
    "02958343": "car",
    "02992529": "cellphone",
    "03001627": "chair",
    "03046257": "clock",
    "03085013": "keyboard",
    "03207941": "dishwasher",
    "03211117": "display",
    "03261776": "earphone",
    "03325088": "faucet",
    "03337140": "file_cabinet",
    "03467517": "guitar",
    "03513137": "helmet",
    "03593526": "jar",
    "03624134": "knife",
    "03636649": "lamp",
    "03642806": "laptop",
    "03691459": "loudspeaker",
    "03710193": "mailbox",
    "03759954": "microphone",
    "03761084": "microwave",
    "03790512": "motorcycle",
    "03797390": "mug",
    "03928116": "piano",
    "03938244": "pillow",
    "03948459": "pistol",
    "03991062": "flowerpot",
    "04004475": "printer",
    "04074963": "remote_control",
    "04090263": "rifle",
    "04099429": "rocket",
    "04225987": "skateboard",
    "04256520": "sofa",
    "04330267": "stove",
    "04379243": "table",
    "04401088": "telephone",
    "04460130": "tower",
    "04468005": "train",
    "04530566": "watercraft",
    "04554684": "washer",
}


def shapenet_class(synset: str) -> str:
    """Class name of a ShapeNet synset id; unknown ids map to `synset_<id>`."""
    return SHAPENET_SYNSETS.get(synset, f"synset_{synset}")


def folder_class(name: str) -> str:
    """Class name from a folder name: lowercase, runs of other characters become one underscore."""
    cls = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    return cls or "other"
