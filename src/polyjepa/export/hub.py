"""Share saved encoders through the Hugging Face Hub (optional: ``pip install 'polyjepa[hub]'``)."""
from __future__ import annotations

import re
from pathlib import Path

from ..errors import UserError

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
FILES = ["config.json", "model.safetensors", "README.md"]


def _hub(what: str = "sharing through the Hugging Face Hub"):
    try:
        import huggingface_hub
    except ImportError:
        raise UserError(f"{what} needs huggingface_hub: pip install 'polyjepa[hub]'") from None
    return huggingface_hub


def download(repo_id: str, *, revision: str | None = None, token: str | None = None) -> Path:
    """The local folder of a Hub model repository's saved encoder (downloaded, or from the local cache)."""
    if not REPO_ID.match(repo_id) or ".." in repo_id:
        raise UserError(f"{repo_id!r} is neither an existing folder nor a Hub repository id (owner/name): pass the "
                        f"folder that save_pretrained wrote")
    hub = _hub(f"{repo_id!r} is not a folder here; loading it as a Hugging Face Hub repository id")
    try:
        from .. import __version__

        folder = hub.snapshot_download(repo_id, revision=revision, token=token, allow_patterns=FILES,
                                       library_name="polyjepa", library_version=__version__)
    except Exception as e:  # network, authentication, missing repository: the library's own errors
        raise UserError(f"cannot download {repo_id!r} from the Hugging Face Hub ({type(e).__name__}: "
                        f"{' '.join(str(e).split())[:200]}), and no folder of that name is here: check the id, "
                        f"your network and token (hf auth login), or the local path") from None
    return Path(folder)


def upload(folder: Path, repo_id: str, *, private: bool = False, token: str | None = None,
           commit_message: str = "Upload polyjepa encoder") -> str:
    """Create (if needed) the model repository ``repo_id`` and upload ``folder``'s files; returns its URL."""
    if not REPO_ID.match(repo_id) or ".." in repo_id:
        raise UserError(f"{repo_id!r} is not a Hub repository id: write owner/name, e.g. alice/ijepa-digits")
    hub = _hub()
    api = hub.HfApi(token=token)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message=commit_message,
                          repo_type="model", allow_patterns=FILES)
    except Exception as e:
        raise UserError(f"cannot upload to {repo_id!r} on the Hugging Face Hub ({type(e).__name__}: "
                        f"{' '.join(str(e).split())[:200]}): check your network and token (hf auth login)") \
            from None
    return str(url)
