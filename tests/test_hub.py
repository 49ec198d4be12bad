"""The Hub path end to end through the real huggingface_hub client, against a loopback stand-in.

How the endpoint is redirected (huggingface_hub 2.4): ``HF_ENDPOINT``, ``HF_HUB_CACHE`` and
``HF_HUB_OFFLINE`` are read once, when ``huggingface_hub.constants`` is imported, so setting the
environment inside a test does nothing to an already-imported client. In-process tests therefore
monkeypatch ``constants.ENDPOINT``, ``constants.HUGGINGFACE_CO_URL_TEMPLATE`` (downloads),
``constants.HF_HUB_CACHE`` and ``constants.HF_HUB_OFFLINE`` (``is_offline_mode()`` reads it at call
time); ``HfApi()`` copies ``constants.ENDPOINT`` when constructed, so hub/push.py builds its client
per call (the module-level ``huggingface_hub.create_repo`` etc. are bound to an ``HfApi`` made at
import and would still talk to huggingface.co). One test runs a subprocess with the real
environment variables to prove that path too. Nothing here touches any address but 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import torch
from conftest import make_model, smooth_image
from original_layout import seeded_original, style_transfer

from adain.image import save_image
from adain.model import AdaIN, load_model
from adain.weights.card import RELEASED_DECODER, UNRECORDED_DECODER, licences
from adain.weights.download import DEFAULT_ORIGINAL_URLS
from adain.weights.hub import DEFAULT_REPO_ID


@pytest.fixture
def hub(stand_in_hub):
    return stand_in_hub


def _from_pretrained(model: str | None = None, revision: str | None = None) -> AdaIN:
    return AdaIN.from_pretrained(model or DEFAULT_REPO_ID, revision=revision)


# The README's first line and the function every command calls resolve the same way.
LOADERS = pytest.mark.parametrize(
    "load", [load_model, _from_pretrained], ids=["load_model", "from_pretrained"]
)


def _files(model: AdaIN, tmp_path: Path, name: str) -> dict[str, bytes]:
    folder = tmp_path / name
    model.save_pretrained(folder)
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def _same_weights(a: AdaIN, b: AdaIN) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _original_files(width: int = 8) -> tuple[dict[str, bytes], tuple[torch.nn.Module, ...]]:
    import io

    vgg, dec = seeded_original(width, seed=3)
    files = {}
    for name, module in (("vgg_normalised.pth", vgg), ("decoder.pth", dec)):
        buffer = io.BytesIO()
        torch.save(module.state_dict(), buffer)
        files[name] = buffer.getvalue()
    return files, (vgg, dec)


def test_from_pretrained_downloads_and_loads_through_redirect(hub, tmp_path, tiny_model):
    hub.commit("org/tiny", _files(tiny_model, tmp_path, "m"))
    loaded = AdaIN.from_pretrained("org/tiny")
    assert _same_weights(loaded, tiny_model)
    # model.safetensors is an LFS file: a 302 from the Hub, then the bytes from the CDN origin.
    assert any(path.startswith("/blobs/") for _, path, _ in hub.requests)
    assert any(path.endswith("/resolve/main/model.safetensors") for _, path, _ in hub.requests)


@LOADERS
def test_revisions_by_branch_tag_and_sha(hub, tmp_path, load):
    first, second, third = make_model(1), make_model(2), make_model(3, depth="relu4_1")
    sha1 = hub.commit("org/tiny", _files(first, tmp_path, "a"))
    hub.tag("org/tiny", "v1")
    hub.commit("org/tiny", _files(second, tmp_path, "b"))
    hub.commit("org/tiny", _files(third, tmp_path, "c"), branch="dev")
    assert _same_weights(load("org/tiny"), second)
    assert _same_weights(load("org/tiny", revision="v1"), first)
    assert _same_weights(load("org/tiny", revision=sha1), first)
    # The model is built from the config.json of the revision resolved, not of main.
    dev = load("org/tiny", revision="dev")
    assert _same_weights(dev, third) and dev.encoder.depth == "relu4_1"


@pytest.mark.parametrize(
    ("model", "revision", "message"),
    [
        ("org/missing", None, "org/missing: no Hub repository with this id, and no local folder"),
        ("org/tiny", "nope", "org/tiny: revision 'nope' not found (no such branch, tag or commit)"),
        ("org/readme-only", None, "org/readme-only@main has neither model.safetensors nor the"),
        ("not a repo id", None, "not a repo id is neither an existing folder nor a Hub repository"),
    ],
)
@LOADERS
def test_not_found_messages(hub, tmp_path, tiny_model, model, revision, message, load):
    hub.commit("org/tiny", _files(tiny_model, tmp_path, "m"))
    hub.commit("org/readme-only", {"README.md": b"# nothing here\n"})
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        load(model, revision=revision)


def test_cached_model_loads_after_server_stops_and_offline(hub, tmp_path, tiny_model, monkeypatch):
    from huggingface_hub import constants

    hub.commit("org/tiny", _files(tiny_model, tmp_path, "m"))
    load_model("org/tiny")
    hub.stop()  # connection refused from now on
    assert _same_weights(load_model("org/tiny"), tiny_model)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert _same_weights(load_model("org/tiny"), tiny_model)
    with pytest.raises(ValueError) as error:
        load_model("org/other")
    message = str(error.value)
    assert "\n" not in message
    for way_out in ("HF_HUB_OFFLINE=1", "--model DIR", "adain convert", "hf cache ls"):
        assert way_out in message
    with pytest.raises(ValueError, match=f"The default {DEFAULT_REPO_ID} is not published yet"):
        load_model()


def test_offline_environment_variable_in_a_fresh_process(hub, tmp_path, tiny_model):
    hub.commit("org/tiny", _files(tiny_model, tmp_path, "m"))
    load_model("org/tiny")
    hub.stop()
    code = (
        "import torch; from adain.model import load_model;"
        "m = load_model('org/tiny'); print(float(m.decoder.conv1_1.weight.detach().sum()))"
    )
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    expected = float(tiny_model.decoder.conv1_1.weight.detach().sum())
    assert float(out.stdout.strip()) == pytest.approx(expected, rel=1e-6)


def test_push_then_from_pretrained_gives_identical_outputs(
    hub, tmp_path, tiny_model, tiny_model_dir, content, style
):
    from hub.push import push

    result = push(tiny_model_dir, "org/pushed", branch="exp", tag="v1")
    assert len(result.commit) == 40
    repo = hub.repos[("model", "org/pushed")]
    assert repo.branches["exp"] == repo.tags["v1"] == result.commit
    files = repo.commits[result.commit]
    assert set(files) >= {"config.json", "model.safetensors", "README.md"}
    assert hashlib.sha256(files["model.safetensors"]).hexdigest() == result.sha256
    card = files["README.md"].decode()
    assert "library_name: adain" in card and "pipeline_tag: image-to-image" in card
    assert licences(UNRECORDED_DECODER) in card
    assert result.sha256 in card and "$" not in card.split("```bibtex")[0].replace("$ADAIN", "")
    loaded = AdaIN.from_pretrained("org/pushed", revision="v1")
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(content, style), tiny_model(content, style), rtol=0, atol=0
        )


def test_truncated_body_is_refused_then_retried(hub, tmp_path, tiny_model, monkeypatch):
    import huggingface_hub.file_download as file_download

    monkeypatch.setattr(file_download.time, "sleep", lambda _: None)  # the client's retry pause
    files = _files(tiny_model, tmp_path, "m")
    hub.commit("org/tiny", files)
    blob = hashlib.sha256(files["model.safetensors"]).hexdigest()
    hub.faults[blob] = "truncate"  # every GET stops half-way, below Content-Length
    with pytest.raises(OSError, match="org/tiny: downloading model.safetensors failed"):
        load_model("org/tiny")
    assert not list((tmp_path / "hf-cache").glob("models--org--tiny/snapshots/*/model.safetensors"))
    # Cut once: the client's retry gets the whole file. (It resumes with Range only past its
    # 10 MB read chunk, so the stand-in's Range support is checked directly below.)
    hub.faults[blob] = "truncate_once"
    hub._served.clear()
    assert _same_weights(load_model("org/tiny"), tiny_model)
    assert hub._served[blob] == 2
    request = urllib.request.Request(
        f"{hub.cdn_url}/blobs/{blob}", headers={"Range": "bytes=10-19"}
    )
    with urllib.request.urlopen(request) as response:
        assert response.status == 206
        assert response.read() == files["model.safetensors"][10:20]


def test_same_size_corruption_is_refused_then_recovers(hub, tmp_path, tiny_model):
    files = _files(tiny_model, tmp_path, "m")
    hub.commit("org/tiny", files)
    blob = hashlib.sha256(files["model.safetensors"]).hexdigest()
    hub.faults[blob] = "corrupt"
    with pytest.raises(ValueError, match=f"does not match the Hub's {blob}"):
        AdaIN.from_pretrained("org/tiny")
    with pytest.raises(ValueError, match="corrupted download was removed"):
        load_model("org/tiny")
    del hub.faults[blob]
    assert _same_weights(load_model("org/tiny"), tiny_model)


def _serve_originals(hub, monkeypatch, sha: dict[str, str] | None = None):
    files, networks = _original_files()
    hub.static.update(files)
    sha = sha if sha is not None else {n: hashlib.sha256(d).hexdigest() for n, d in files.items()}
    urls = " ".join(f"{hub.cdn_url}/files/{name}#sha256={sha[name]}" for name in files)
    monkeypatch.setenv("ADAIN_ORIGINAL_URLS", urls)
    return networks


@LOADERS
def test_default_falls_back_to_the_original_release_files(
    hub, monkeypatch, capsys, content, style, load
):
    vgg, dec = _serve_originals(hub, monkeypatch)
    model = load()  # the default repo answers 404 on the stand-in, as on the real Hub
    notice = capsys.readouterr().err.strip().splitlines()[-1]
    assert notice.startswith("adain: the default Hub model is not published yet")
    with torch.no_grad():
        expected = style_transfer(vgg, dec, content, style)
        torch.testing.assert_close(model(content, style), expected, rtol=1e-4, atol=1e-4)
    downloads = sum(path.startswith("/files/") for _, path, _ in hub.requests)
    assert downloads == 2
    load()  # cached: no second download
    assert sum(path.startswith("/files/") for _, path, _ in hub.requests) == downloads
    from huggingface_hub import constants

    hub.stop()
    assert _same_weights(load(), model)  # no network: the converted copy, at once
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert _same_weights(load(), model)


def test_original_sha_mismatch_is_refused(hub, monkeypatch, tmp_path):
    _serve_originals(hub, monkeypatch, {"vgg_normalised.pth": "0" * 64, "decoder.pth": "0" * 64})
    with pytest.raises(ValueError, match="vgg_normalised.pth: sha256 [0-9a-f]{64} does not match"):
        load_model()
    cache = tmp_path / "adain-cache"
    assert not list(cache.rglob("*.safetensors")) and not list(cache.rglob("*.pth*"))


def test_failed_fallback_download_names_the_ways_out(hub, monkeypatch, tmp_path):
    urls = f"{hub.cdn_url}/files/vgg_normalised.pth {hub.cdn_url}/files/decoder.pth"
    monkeypatch.setenv("ADAIN_ORIGINAL_URLS", urls)  # the stand-in serves neither: 404
    with pytest.raises(OSError) as error:
        load_model()
    message = str(error.value)
    assert message.startswith(f"the default {DEFAULT_REPO_ID} is not published on the Hub yet")
    assert "vgg_normalised.pth: HTTP 404" in message and "adain convert" in message
    assert not list((tmp_path / "adain-cache").rglob("*.*"))


@LOADERS
@pytest.mark.parametrize("repo_type", ["model", "space"])
def test_original_files_in_a_hub_repo_convert_on_the_fly(
    hub, monkeypatch, repo_type, content, style, load
):
    files, (vgg, dec) = _original_files()
    hub.commit("someone/adain-files", files, repo_type=repo_type)
    model_id = "someone/adain-files" if repo_type == "model" else "spaces/someone/adain-files"
    model = load(model_id)
    with torch.no_grad():
        expected = style_transfer(vgg, dec, content, style)
        torch.testing.assert_close(model(content, style), expected, rtol=1e-4, atol=1e-4)
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert _same_weights(load(model_id), model)  # the converted folder is cached
    (folder,) = (Path(os.environ["ADAIN_CACHE"]) / "hub").glob("*/*")
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert licences(RELEASED_DECODER) in card
    for data in files.values():  # provenance: each file's Hub URL at its commit, and sha256
        assert hashlib.sha256(data).hexdigest() in card
    assert f"/resolve/{folder.name}/vgg_normalised.pth" in card


def test_manifest_matches_the_pinned_default():
    from adain.weights import hub as pretrained
    from hub.push import read_manifest

    default = read_manifest()["default"]
    assert default["repo_id"] == pretrained.DEFAULT_REPO_ID
    assert (default["revision"] or None) == pretrained.DEFAULT_REVISION
    assert (default["sha256"] or None) == pretrained.DEFAULT_SHA256
    assert default["published"] == (pretrained.DEFAULT_REVISION is not None)


def test_cli_push_checkpoint_and_publish_original(hub, tmp_path, tiny_model, tiny_model_dir):
    from typer.testing import CliRunner

    from adain.cli import app as adain_app
    from hub.cli import app

    runner = CliRunner()
    # A training checkpoint: a new decoder on the encoder of the model it was trained with.
    trained = make_model(seed=5)
    checkpoint = tmp_path / "ckpt_000002.pt"
    config = {"lr": 1e-4, "style_weight": 10.0}
    torch.save({"decoder": trained.decoder.state_dict(), "config": config, "step": 2}, checkpoint)
    args = ["push", str(checkpoint), "--repo-id", "org/trained", "--encoder", str(tiny_model_dir)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "pushed" in result.output and "sha256" in result.output
    loaded = load_model("org/trained")
    assert _same_weights(loaded.decoder, trained.decoder)
    assert _same_weights(loaded.encoder, tiny_model.encoder)
    card = hub.repos[("model", "org/trained")].commits[
        hub.repos[("model", "org/trained")].branches["main"]
    ]
    assert (
        '"style_weight": 10.0' in card["README.md"].decode()
        and '"step": 2' in card["README.md"].decode()
    )

    files, _ = _original_files()
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    vgg, dec = tmp_path / "vgg_normalised.pth", tmp_path / "decoder.pth"
    result = runner.invoke(
        adain_app, ["publish-original", str(vgg), str(dec), "--repo-id", "org/orig", "--tag", "v1"]
    )  # mounted into `adain`
    assert result.exit_code == 0, result.output
    repo = hub.repos[("model", "org/orig")]
    card = repo.commits[repo.tags["v1"]]["README.md"].decode()
    for data in files.values():
        assert hashlib.sha256(data).hexdigest() in card  # provenance: the source files' sha256
    assert licences(RELEASED_DECODER) in card
    assert _same_weights(load_model("org/orig", revision="v1"), AdaIN.from_original(vgg, dec))

    result = runner.invoke(app, ["push", str(tmp_path / "nope"), "--repo-id", "org/x"])
    assert (
        result.exit_code == 1 and "error: " in result.output and "does not exist" in result.output
    )
    result = runner.invoke(app, ["push", str(tiny_model_dir), "--repo-id", "no-slash"])
    assert result.exit_code == 2 and "expected ORG/NAME" in result.output


def test_fallback_folder_is_what_save_pretrained_writes(hub, monkeypatch, tmp_path):
    """The original-release fallback converts without building a model; the folder it writes
    loads with from_pretrained and matches AdaIN.from_original + save_pretrained."""
    from safetensors.torch import load_file

    from adain.weights.download import original_model_dir

    _serve_originals(hub, monkeypatch)
    folder = original_model_dir()
    assert {p.name for p in folder.iterdir()} == {
        "model.safetensors", "config.json", "README.md", "provenance.json"
    }  # fmt: skip
    for name, data in _original_files()[0].items():
        (tmp_path / name).write_bytes(data)
    reference = AdaIN.from_original(tmp_path / "vgg_normalised.pth", tmp_path / "decoder.pth")
    expected = _files(reference, tmp_path, "saved")
    assert (folder / "config.json").read_bytes() == expected["config.json"]
    converted, saved = load_file(folder / "model.safetensors"), reference.state_dict()
    assert converted.keys() == saved.keys()
    assert all(torch.equal(converted[k], saved[k]) for k in saved)
    assert _same_weights(AdaIN.from_pretrained(str(folder)), reference)
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert "library_name: adain" in card and licences(RELEASED_DECODER) in card
    provenance = json.loads((folder / "provenance.json").read_text())
    for entry in provenance.values():  # the card names each URL with its sha256
        assert f"| `{entry['url']}` | `{entry['sha256']}` |" in card


def test_from_pretrained_passes_the_download_options(hub, tmp_path, tiny_model):
    files = _files(tiny_model, tmp_path, "m")
    hub.commit("org/tiny", files)
    cache = tmp_path / "own-cache"
    loaded = AdaIN.from_pretrained("org/tiny", cache_dir=cache)
    assert _same_weights(loaded, tiny_model)
    assert loaded._hub_mixin_config == json.loads(files["config.json"])  # the folder's config
    (weights,) = cache.glob("models--org--tiny/snapshots/*/model.safetensors")
    assert weights.read_bytes() == files["model.safetensors"]
    hub.requests.clear()
    again = AdaIN.from_pretrained("org/tiny", cache_dir=cache, local_files_only=True)
    assert _same_weights(again, tiny_model) and hub.requests == []  # not even the probe
    with pytest.raises(ValueError, match=r"\(local_files_only=True\)"):
        AdaIN.from_pretrained("org/tiny", local_files_only=True)  # not in the default cache
    AdaIN.from_pretrained("org/tiny", cache_dir=cache, force_download=True)
    assert sum(path.startswith("/blobs/") for _, path, _ in hub.requests) == 1  # fetched again


# Without a network -------------------------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch, tmp_path) -> list[tuple]:
    """A machine without a network: every TCP connection is refused, and recorded.

    The Hub endpoint is the closed loopback port conftest sets; the attempts are counted at
    ``socket.create_connection``, which both huggingface_hub's client and urllib go through.
    """
    from huggingface_hub import constants

    endpoint = "http://127.0.0.1:9"
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    template = f"{endpoint}/{{repo_id}}/resolve/{{revision}}/{{filename}}"
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return _refuse_connections(monkeypatch)


def _refuse_connections(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    attempts: list[tuple] = []

    def refuse(address: tuple, *args: object, **kwargs: object) -> socket.socket:
        attempts.append(address)
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


def _offline_message_parts(model_id: str) -> list[str]:
    parts = [*DEFAULT_ORIGINAL_URLS, "adain convert vgg_normalised.pth decoder.pth -o DIR"]
    parts += ["--model DIR", "hf cache ls", "Connection refused"]
    return parts + (["ADAIN_ORIGINAL_URLS"] if model_id == DEFAULT_REPO_ID else [])


@LOADERS
@pytest.mark.parametrize("model_id", [DEFAULT_REPO_ID, "org/other"])
def test_no_network_fails_at_once_in_one_line(no_network, capfd, load, model_id):
    with pytest.raises(ValueError) as error:
        load(model_id)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{model_id}@main is not in the local cache")
    for part in _offline_message_parts(model_id):
        assert part in message, part
    assert no_network == [("127.0.0.1", 9)]  # one probe: no retries, no release-file download
    assert capfd.readouterr().err == ""  # no retry warnings


def test_no_network_loads_a_cached_model_without_retrying(hub, tmp_path, tiny_model, monkeypatch):
    from huggingface_hub import constants

    hub.commit("org/tiny", _files(tiny_model, tmp_path, "m"))
    cache = constants.HF_HUB_CACHE
    load_model("org/tiny")
    hub.stop()
    attempts = _refuse_connections(monkeypatch)
    assert _same_weights(AdaIN.from_pretrained("org/tiny"), tiny_model)
    assert len(attempts) == 1 and constants.HF_HUB_CACHE == cache
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ValueError, match=r"\(HF_HUB_OFFLINE=1\)"):
        AdaIN.from_pretrained("org/other")
    assert len(attempts) == 1  # HF_HUB_OFFLINE: not even the probe


def test_no_network_commands_say_so_in_one_line(no_network, tmp_path, tiny_model_dir):
    from typer.testing import CliRunner

    from adain.cli import app as adain_app
    from hub.cli import app as hub_app

    runner = CliRunner()
    image = tmp_path / "image.png"
    save_image(smooth_image(1, 32, 32), image)
    args = ["stylize", str(image), "-s", str(image), "-o", str(tmp_path / "out.png")]
    for command, app, expected in [
        ([*args, "--model", "org/x"], adain_app, "org/x@main is not in the local cache"),
        (["push", str(tiny_model_dir), "--repo-id", "org/x"], hub_app, "cannot push to org/x"),
    ]:
        del no_network[:]
        result = runner.invoke(app, command)
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 1 and len(lines) == 1, result.stderr
        assert lines[0].startswith(f"error: {expected}") and "Connection refused" in lines[0]
        assert no_network == [("127.0.0.1", 9)]
    assert not (tmp_path / "out.png").exists()


class _Saver:
    """Not a model: save_model_dir needs only ``save_pretrained``."""

    def __init__(self, fail: bool = False):
        self.fail = fail

    def save_pretrained(self, save_directory: str | Path) -> None:
        (Path(save_directory) / "config.json").write_text("{}")
        if self.fail:
            raise RuntimeError("disk full")


def test_save_model_dir_is_duck_typed_and_atomic(tmp_path):
    from adain.weights.hub import save_model_dir

    folder = save_model_dir(_Saver(), tmp_path / "out", model_card="# card\n")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json"]
    with pytest.raises(ValueError, match="already exists"):
        save_model_dir(_Saver(), folder)
    with pytest.raises(RuntimeError, match="disk full"):
        save_model_dir(_Saver(fail=True), folder, overwrite=True)
    assert (folder / "README.md").read_text() == "# card\n"  # the old folder is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging folder left behind


def test_dry_run_folder_never_replaces_its_source_or_unrelated_files(tmp_path, tiny_model_dir):
    """`hub push DIR --dry-run -o DIR --overwrite` emptied the model it was publishing; an
    unrelated -o folder lost its files too. The card is now written with the folder, whole."""
    from typer.testing import CliRunner

    from hub.cli import app

    def push(output: Path, *extra: str):
        args = ["push", str(tiny_model_dir), "--repo-id", "org/x", "--dry-run", "-o", str(output)]
        return CliRunner().invoke(app, [*args, *extra])

    before = {p.name: p.read_bytes() for p in tiny_model_dir.iterdir()}
    result = push(tiny_model_dir, "--overwrite")
    assert result.exit_code == 1 and "is one of the inputs: choose another -o" in result.output
    assert {p.name: p.read_bytes() for p in tiny_model_dir.iterdir()} == before
    unrelated = tmp_path / "docs"
    unrelated.mkdir()
    (unrelated / "notes.md").write_text("mine")
    result = push(unrelated, "--overwrite")
    assert result.exit_code == 1 and "holds notes.md, which this command does not write" in (
        result.output
    )
    assert (unrelated / "notes.md").read_text() == "mine"
    built = tmp_path / "built"
    assert push(built).exit_code == 0
    assert "already exists" in push(built).output
    result = push(built, "--overwrite")
    assert result.exit_code == 0 and "not pushed" in result.output
    assert sorted(p.name for p in built.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    assert "org/x" in (built / "README.md").read_text()


@pytest.mark.parametrize("module", ["hub", "download", "convert", "info", "folder", "card"])
def test_weights_never_import_the_model(module):
    """adain.weights sits below the model: a fresh import leaves adain.model (and, but for the
    conversion, torch) out of sys.modules."""
    above = ("model", "api", "engine", "cli", "batch", "sheet", "gatys", "compare", "encoder")
    code = (
        f"import sys, adain.weights.{module}; "
        "print(' '.join(sorted(m for m in sys.modules if m == 'torch' "
        f"or m.split('.')[:2] in [['adain', n] for n in {above + ('decoder',)!r}])))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    imported = out.stdout.split()
    assert imported == (["torch"] if module == "convert" else []), imported
