"""The attention section in a real browser: the head picker shows the picked head's probabilities, and on a grid
the patch picker shows where the picked patch attends under that head."""

import numpy as np
import pytest

import explorer
from explorer.analysis.attention import layer_attention

from browser import CANDIDATES, Chromium, blankness, find_chromium  # tests/browser.py, on pytest's pythonpath

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(find_chromium() is None,
                       reason=f"no Chromium found (looked for $CHROMIUM, {', '.join(CANDIDATES)})"),
]
torch = pytest.importorskip("torch")
T = pytest.importorskip("transformers")


def tiny(model, folder):
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.5)
    model.save_pretrained(folder)
    return folder


PICK = """(async () => {
  const doc = Bokeh.documents[0];
  doc.get_model_by_name('attention_head').value = 'head 2';
  %s
  await new Promise((resolve) => setTimeout(resolve, 300));  // CustomJS callbacks run asynchronously
  const out = {};
  for (const name of ['attention_probabilities', 'attention_patch']) {
    const fig = doc.get_model_by_name(name);
    if (fig) out[name] = [fig.title.text, Array.from(fig.renderers[0].data_source.data.image[0])];
  }
  return out;
})()"""


def test_the_head_picker_shows_that_heads_probabilities(tmp_path, monkeypatch):
    from explorer.reporting.sections.attention import probability_codes

    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "")
    config = T.GPT2Config(n_embd=16, n_layer=1, n_head=4, n_positions=40, vocab_size=50, bos_token_id=0,
                          eos_token_id=0)
    emb = explorer.load(f"gpt2:{tiny(T.GPT2Model(config), tmp_path / 'gpt2')},attention=0")
    path = tmp_path / "gpt2.html"
    explorer.report(emb, path)
    with Chromium(width=1280, height=1100) as browser:
        result = browser.open(path)
        assert result.errors == [] and result.idle
        assert browser.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        picked = browser.evaluate(PICK % "")
        (tmp_path / "attention.png").write_bytes(browser.screenshot(full_page=True))
    expected = probability_codes(layer_attention(emb.matrix, emb.attention).probabilities[2])
    title, image = picked["attention_probabilities"]
    assert title == "head 2: attention probabilities"
    np.testing.assert_array_equal(np.array(image), expected.reshape(-1))


def test_on_a_grid_the_patch_picker_shows_where_the_patch_attends_under_the_picked_head(tmp_path, monkeypatch):
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "")
    config = T.ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=4, intermediate_size=32,
                         image_size=12, patch_size=2)
    emb = explorer.load(f"hf:{tiny(T.ViTModel(config), tmp_path / 'vit')},attention=0")
    path = tmp_path / "vit.html"
    explorer.report(emb, path)
    with Chromium(width=1920, height=1100) as browser:
        result = browser.open(path)
        assert result.errors == [] and result.idle
        inked, colours = blankness(result.screenshot)
        assert inked > 0.05 and colours > 100
        picked = browser.evaluate(PICK % "doc.get_model_by_name('attention_patch_picker').value = 'row 0, col 5';")
    exact = layer_attention(emb.matrix, emb.attention, grid=emb.grid)
    title, image = picked["attention_patch"]
    assert title == "head 2: where patch (row 0, col 5) attends"
    np.testing.assert_allclose(image, exact.patch_maps[2, list(exact.patch_index).index(5)].reshape(-1), atol=1e-7)


def test_a_rotary_models_head_picker_shows_that_heads_curves(tmp_path, monkeypatch):
    from explorer.analysis.attention import rotary_attention
    from explorer.core.attention import AttentionInputs

    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "")
    rng = np.random.default_rng(0)
    theta = 100.0 ** -(np.arange(4) / 4)
    angles = np.arange(40)[:, None] * theta[None, :]
    inputs = AttentionInputs(0, 3, rng.normal(size=(24, 24)), rng.normal(size=(24, 24)), rng.normal(size=24),
                             rng.normal(size=24), scale=8 ** -0.5, causal=True, rotary="half")  # biases: a token curve
    emb = explorer.PositionEmbedding(np.concatenate([np.cos(angles), np.sin(angles)], axis=1), provider="rotary",
                                     source="test", kind="rotary", attention=inputs)
    path = tmp_path / "rotary.html"
    explorer.report(emb, path)
    with Chromium(width=1280, height=1100) as browser:
        result = browser.open(path)
        assert result.errors == [] and result.idle
        picked = browser.evaluate("""(async () => {
          const doc = Bokeh.documents[0];
          doc.get_model_by_name('rotary_head').value = 'head 2';
          await new Promise((resolve) => setTimeout(resolve, 300));
          const score = doc.get_model_by_name('rotary_score'), energy = doc.get_model_by_name('rotary_energy');
          const data = score.renderers[0].data_source.data;
          return [score.title.text, Array.from(data.score), Array.from(energy.renderers[0].data_source.data.query),
                  Array.from(data.token)];
        })()""")
    exact = rotary_attention(emb.matrix, emb.attention)
    assert picked[0] == "head 2: score against distance"
    np.testing.assert_allclose(picked[1], exact.score[2], rtol=1e-6)
    np.testing.assert_allclose(picked[2], exact.query_energy[2], rtol=1e-6)
    np.testing.assert_allclose(picked[3], exact.token_score[2], rtol=1e-6)  # the zero token: the biases alone
    assert np.ptp(exact.token_score[2]) > 1e-3 and np.abs(exact.token_score[2] - exact.token_score[0]).max() > 1e-3
