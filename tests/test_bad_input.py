"""Bad input meets one clear message and leaves what was already written intact."""

import json
import os
import subprocess
import sys

import soundfile as sf

from jaxser.data import synthetic
from tiny_config import ROOT, tiny_quickstart

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "JAX_PLATFORMS": "cpu"}
CODES = "WLEAFTN"


def _emodb_copy(root):
  """An EmoDB-layout folder of synthetic speech: 4 speakers x 7 emotions."""
  corpus = synthetic.build(dict(num_speakers=4, utterances_per_speaker=7, min_seconds=0.5,
                                max_seconds=1.0))
  os.makedirs(os.path.join(root, "wav"))
  for k, u in enumerate(corpus.utterances):
    spk = ("03", "08", "09", "10")[k // 7]
    name = f"{spk}a0{1 + k % 2}{CODES[k % 7]}a.wav"
    sf.write(os.path.join(root, "wav", name), corpus.waveforms[u.id], 16000, subtype="PCM_16")
  return root


def _run(config_path, workdir, *overrides):
  return subprocess.run([sys.executable, "-m", "jaxser.train", "--config", config_path,
                         "--workdir", workdir, *overrides],
                        env=ENV, capture_output=True, text=True, cwd=ROOT)


def test_corrupt_wav_is_named_counted_and_damages_nothing(tmp_path):
  manual_dir = _emodb_copy(str(tmp_path / "emodb"))
  config = tiny_quickstart(epochs=1)
  config.corpus = dict(name="emodb", manual_dir=manual_dir, sample_rate=16000)
  config.protocol = dict(name="leave_one_speaker_out", valid_speakers=1, max_folds=1)
  config.train.batch_size = 4
  config_path = tmp_path / "emodb_tiny.py"
  config_path.write_text("import ml_collections\n\ndef get_config():\n"
                         f"  return ml_collections.ConfigDict({config.to_dict()!r})\n")
  workdir = str(tmp_path / "run")
  first = _run(str(config_path), workdir)
  assert first.returncode == 0, first.stderr[-2000:]
  written = {p: open(os.path.join(workdir, p), "rb").read()
             for p in ("report.json", "report.md", "config.json", "corpus.json")}

  name = sorted(n for n in os.listdir(os.path.join(manual_dir, "wav")) if n.startswith("08"))[0]
  bad = os.path.join(manual_dir, "wav", name)
  with open(bad, "wb") as f:
    f.write(b"RIFF" + bytes(range(256)) * 4)  # not a WAV any more

  # A new run stops before training, naming the file, the problem and the flag that skips it.
  stopped = _run(str(config_path), str(tmp_path / "stopped"))
  assert stopped.returncode == 2 and "Traceback" not in stopped.stderr
  err = [l for l in stopped.stderr.splitlines() if l.startswith("error:")]
  assert len(err) == 1 and f"wav/{name} (unreadable file)" in err[0], stopped.stderr[-2000:]
  assert "--skip_bad_files" in err[0]
  assert not os.path.exists(tmp_path / "stopped" / "fold_0")

  # Asked to, a run names the file, leaves it out and counts the skip in its report.
  fresh = _run(str(config_path), str(tmp_path / "fresh"), "--skip_bad_files")
  assert fresh.returncode == 0, fresh.stderr[-2000:]
  assert f"emodb: leaving out wav/{name} (unreadable file)" in fresh.stderr
  assert "skipped 1 utterances (unreadable file: 1)" in fresh.stderr
  rep = json.load(open(tmp_path / "fresh" / "report.json"))
  assert rep["corpus"]["skipped"] == {"unreadable file": 1}
  assert rep["corpus"]["bad_files"] == {f"wav/{name}": "unreadable file"}
  assert rep["corpus"]["utterances"] == 27

  # Re-running into the first run's directory is refused; its files are untouched.
  again = _run(str(config_path), workdir, "--skip_bad_files")
  assert again.returncode == 2
  err = [l for l in again.stderr.splitlines() if l.startswith("error:")]
  assert len(err) == 1 and "another version of corpus 'emodb'" in err[0], again.stderr[-2000:]
  assert "Traceback" not in again.stderr
  for p, content in written.items():
    assert open(os.path.join(workdir, p), "rb").read() == content, p


def test_missing_manual_dir_names_the_expected_layout(tmp_path):
  config_path = tmp_path / "c.py"
  config_path.write_text(
      "import ml_collections, sys\nsys.path.insert(0, %r)\nfrom tiny_config import tiny_quickstart\n"
      "def get_config():\n  c = tiny_quickstart()\n"
      "  c.corpus = dict(name='emodb', manual_dir=%r)\n  return c\n"
      % (os.path.join(ROOT, "tests"), str(tmp_path / "nowhere")))
  out = _run(str(config_path), str(tmp_path / "run"))
  assert out.returncode == 2
  assert "Traceback" not in out.stderr
  assert "nowhere/wav is not a directory" in out.stderr and "wav/03a01Fa.wav" in out.stderr


def test_override_of_an_unknown_setting_lists_the_settings_of_a_variant_config(tmp_path):
  config = os.path.join(ROOT, "configs", "emodistill_emodb.py") + ":tau_l_sweep"
  out = _run(config, str(tmp_path / "run"), "--config.stages.emodistill.loss_cfg.tau_x=3")
  assert out.returncode == 2 and "Traceback" not in out.stderr
  err = [l for l in out.stderr.splitlines() if l.startswith("error:")]
  assert len(err) == 1, out.stderr[-2000:]
  assert "config.stages.emodistill.loss_cfg has no setting 'tau_x'" in err[0]
  assert "'tau_l', 'tau_p'" in err[0], err[0]  # read from the variant's config file
