"""The bundled recipes as a user meets them: cards, data that must be brought, the listing, dependencies."""
import ast
import sys
from pathlib import Path

import pytest

import polyjepa as pj
from polyjepa.cli import main
from polyjepa.config import load_recipe, recipe_cards
from polyjepa.errors import UserError, require

ROOT = Path(__file__).resolve().parents[1]
NO_HEADLINE: set[str] = set()


def test_every_recipe_has_a_card_and_no_default_data_outside_the_package():
    cards = recipe_cards()
    assert len(cards) >= 20
    for c in cards:
        assert c["error"] is None, c
        assert c["modality"] and c["description"], c["name"]
        if c["name"] not in NO_HEADLINE:
            assert c["method"] and c["headline"] and c["command"], c["name"]
        # a recipe without a data section makes its own data (a simulator) and counts as bundled
        source = (load_recipe(c["name"]).get("data") or {}).get("source", "digits")
        # a bundled name (digits, GunPoint, breast_cancer) or nothing: never a path a user's machine lacks
        assert source is None or ("/" not in str(source) and not str(source).startswith(".")), (c["name"], source)
        assert c["bundled"] == (source is not None)
        if not c["bundled"]:
            assert "--data" not in c["bring"] and len(c["bring"]) > 20, c["name"]


@pytest.mark.parametrize("recipe", ["ijepa-mnist", "pointjepa", "ajepa", "ecgjepa", "eegjepa"])
def test_a_recipe_without_its_data_names_what_to_pass(recipe, tmp_path, capsys):
    with pytest.raises(UserError, match="has no bundled data: pass --data with"):
        pj.pretrain(recipe, out=str(tmp_path / "run"), progress=False, echo=lambda *a: None)
    assert not (tmp_path / "run").exists()          # nothing was created
    assert main(["pretrain", recipe]) == 2
    err = capsys.readouterr().err.strip()
    card = {c["name"]: c for c in recipe_cards()}[recipe]
    assert err.count("\n") == 0 and err.startswith("polyjepa: error: ") and card["bring"] in err


def test_a_recipe_with_no_source_must_say_what_to_bring(tmp_path):
    path = tmp_path / "mine.yaml"
    import yaml

    recipe = yaml.safe_load((ROOT / "src/polyjepa/recipes/ijepa-digits.yaml").read_text())
    recipe.pop("card", None)
    recipe["data"]["source"] = None
    text = yaml.safe_dump(recipe)
    path.write_text(text)
    with pytest.raises(UserError, match="card.bring"):
        load_recipe(str(path))
    path.write_text(text + "card: {bring: my images}\n")
    assert load_recipe(str(path)).card.bring == "my images"
    path.write_text(text + "card: {bring: x, colour: red}\n")
    with pytest.raises(UserError, match="card.colour"):
        load_recipe(str(path))


def test_recipes_listing_shows_modality_data_and_headline(capsys):
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    for c in recipe_cards():
        line = next(line for line in out.splitlines() if line.startswith(c["name"] + " "))
        assert c["modality"][:26] in line and ("bundled" if c["bundled"] else "--data") in line
        assert (c["headline"] or "-") in line
    assert main(["recipes", "pointjepa"]) == 0
    one = capsys.readouterr().out
    assert "bring it: --data with" in one and "modelnet" in one.lower() and "command:" in one
    assert main(["recipes", "nope"]) == 2


def test_a_missing_optional_package_names_its_extra():
    with pytest.raises(UserError, match=r"tables need the 'no_such_pkg_xyz' package: pip install 'polyjepa\[tabular\]'"):
        require("no_such_pkg_xyz", "tabular", "tables")
    assert require("json", "x", "y").dumps([]) == "[]"


# import name -> distribution name, for the packages polyjepa may import
DISTRIBUTIONS = {"torch": "torch", "numpy": "numpy", "sklearn": "scikit-learn", "threadpoolctl": "threadpoolctl",
                 "safetensors": "safetensors", "omegaconf": "omegaconf", "tqdm": "tqdm", "matplotlib": "matplotlib",
                 "lightning_fabric": "lightning-fabric", "PIL": "pillow", "yaml": "pyyaml", "pandas": "pandas",
                 "pyarrow": "pyarrow", "aeon": "aeon", "soundfile": "soundfile", "imageio": "imageio", "av": "av",
                 "scipy": "scipy", "onnx": "onnx", "onnxscript": "onnxscript", "onnxruntime": "onnxruntime",
                 "huggingface_hub": "huggingface_hub", "tensorboard": "tensorboard",
                 "gymnasium": "gymnasium", "implicit": "implicit"}


def test_every_runtime_import_is_a_declared_dependency():
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {d.split(">")[0].split("=")[0].split("[")[0].strip().lower()
                for d in meta["dependencies"] + [d for ds in meta["optional-dependencies"].values() for d in ds]}
    stdlib = set(sys.stdlib_module_names) | {"polyjepa"}
    for path in (ROOT / "src" / "polyjepa").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
            for name in names:
                top = name.split(".")[0]
                if top in stdlib:
                    continue
                assert top in DISTRIBUTIONS, f"{path.relative_to(ROOT)} imports {top}: declare it in pyproject.toml"
                assert DISTRIBUTIONS[top] in declared, f"{path.relative_to(ROOT)} imports {top} ({DISTRIBUTIONS[top]}), " \
                                                       f"which pyproject.toml does not declare"
