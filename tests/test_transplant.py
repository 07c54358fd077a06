import json

import pytest
import torch

from conftest import save_tiny_model, synthetic_corpus, train_byte_level_bpe
from tokenshift.modeling import load_model
from tokenshift.transplant import METHODS, TransplantConfig, build_plan, transplant
from tokenshift.tokenizer import load_tokenizer


def other_tokenizer(folder, *, vocab_size=360, specials=("<|endoftext|>",), seed=7):
    """A different byte-level BPE (other corpus, other size): some tokens shared, some new."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    corpus = [line.replace("cat", "chat").replace("the", "la") + " superlongword" for line in synthetic_corpus(300, seed=seed)]
    backend.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(specials),
                                                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    folder.mkdir(parents=True, exist_ok=True)
    backend.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|endoftext|>"}))
    return folder


@pytest.fixture(scope="module")
def new_tokenizer_dir(tmp_path_factory):
    return other_tokenizer(tmp_path_factory.mktemp("newtok"))


@pytest.fixture(scope="module")
def donor_dir(tmp_path_factory, new_tokenizer_dir):
    from tokenizers import Tokenizer

    backend = Tokenizer.from_file(str(new_tokenizer_dir / "tokenizer.json"))
    return save_tiny_model(tmp_path_factory.mktemp("donor"), backend, seed=3)


@pytest.fixture(scope="module")
def untied_model_dir(tmp_path_factory, tiny_backend):
    return save_tiny_model(tmp_path_factory.mktemp("untied"), tiny_backend, tie=False, seed=5)


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("tied", [True, False])
def test_every_method_gives_finite_rows_and_exact_copies(method, tied, tiny_model_dir, untied_model_dir, new_tokenizer_dir, donor_dir):
    model_dir = tiny_model_dir if tied else untied_model_dir
    old = load_model(str(model_dir), device="cpu")
    old_in = old.model.get_input_embeddings().weight.detach().clone()
    old_out = old.model.get_output_embeddings().weight.detach().clone()
    donor = str(donor_dir) if METHODS[method].uses_donor else None
    lm, new, report = transplant(str(model_dir), str(new_tokenizer_dir), config=TransplantConfig(method=method, donor=donor))
    plan = build_plan(old.tokenizer, new, old_rows=old_in.shape[0])
    new_in = lm.get_input_embeddings().weight.detach()
    new_out = lm.get_output_embeddings().weight.detach()
    assert new_in.shape[0] == -(-new.vocab_size // 64) * 64 and torch.isfinite(new_in).all() and torch.isfinite(new_out).all()
    assert report.counts["exact"] > 50 and report.counts["composed"] > 10
    assert torch.equal(new_in[plan.copy_new], old_in[plan.copy_old])  # bit-identical copies
    assert torch.equal(new_out[plan.copy_new], old_out[plan.copy_old])
    assert report.tied == tied
    if not tied:
        assert not torch.equal(new_in, new_out)  # the head got its own estimate from the head rows


def test_own_tokenizer_reproduces_logits(tiny_model_dir):
    old = load_model(str(tiny_model_dir), device="cpu")
    ids = torch.tensor([old.tokenizer.encode(" ".join(synthetic_corpus(3)))])
    with torch.no_grad():
        expected = old.model(ids).logits
    lm, _, report = transplant(str(tiny_model_dir), str(tiny_model_dir), config=TransplantConfig(method="hybrid"))
    with torch.no_grad():
        assert torch.equal(lm(ids).logits, expected)
    assert report.counts.get("composed", 0) == 0


def test_special_tokens_follow_roles(tiny_model_dir, tmp_path):
    new_dir = other_tokenizer(tmp_path / "roles", specials=("<pad>", "<s>", "<|endoftext|>"))
    cfg = json.loads((new_dir / "tokenizer_config.json").read_text())
    cfg.update({"bos_token": "<s>", "pad_token": "<pad>"})
    (new_dir / "tokenizer_config.json").write_text(json.dumps(cfg))
    old = load_model(str(tiny_model_dir), device="cpu")
    old_in = old.model.get_input_embeddings().weight.detach().clone()
    lm, new, report = transplant(str(tiny_model_dir), str(new_dir), out=tmp_path / "out")
    eos_new, eos_old = new.special.eos, old.tokenizer.special.eos
    assert eos_new != eos_old
    assert torch.equal(lm.get_input_embeddings().weight[eos_new], old_in[eos_old])
    assert report.counts["special"] == 1 and report.counts["fallback"] >= 2  # <s>, <pad> have no old counterpart
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert (config["eos_token_id"], config["bos_token_id"], config["pad_token_id"]) == (eos_new, new.special.bos, new.special.pad)


def test_saved_folder_reloads_and_generates(tiny_model_dir, new_tokenizer_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "moved"
    _, new, report = transplant(str(tiny_model_dir), str(new_tokenizer_dir), out=out, config=TransplantConfig(pad_to_multiple_of=64))
    model = AutoModelForCausalLM.from_pretrained(str(out))
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    assert model.get_input_embeddings().weight.shape[0] % 64 == 0 and report.embedding_rows % 64 == 0
    ids = tokenizer("le chat mange", return_tensors="pt").input_ids
    generated = model.generate(ids, max_new_tokens=5, do_sample=False, pad_token_id=new.special.eos)
    assert generated.shape[1] == ids.shape[1] + 5 and int(generated.max()) < new.vocab_size
    saved = json.loads((out / "transplant.json").read_text())
    assert saved["method"] == "scaled" and saved["counts"] == report.counts and saved["digits_old"] in ("single", "free", "group3-left", "group3-right")
    assert sum(stop - start for start, stop in saved["copied_ids"]) == report.counts.get("exact", 0) + report.counts.get("special", 0)


def test_killed_transplant_leaves_no_folder(tiny_model_dir, new_tokenizer_dir, tmp_path, monkeypatch):
    import tokenshift.weights.write as write

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(write, "write_shard", crash)
    with pytest.raises(KeyboardInterrupt):
        transplant(str(tiny_model_dir), str(new_tokenizer_dir), out=tmp_path / "never")
    assert not (tmp_path / "never").exists() and list(tmp_path.iterdir()) == []


def test_bad_input(tiny_model_dir, new_tokenizer_dir, tmp_path):
    with pytest.raises(ValueError, match="not the target tokenizer"):
        transplant(str(tiny_model_dir), str(new_tokenizer_dir), config=TransplantConfig(method="omp", donor=str(tiny_model_dir)))
    with pytest.raises(ValueError, match="did you mean subword"):
        transplant(str(tiny_model_dir), str(new_tokenizer_dir), config=TransplantConfig(method="subwrd"))
    with pytest.raises(ValueError, match="no option 'nosuch'.*its options: scale=0.85"):
        transplant(str(tiny_model_dir), str(new_tokenizer_dir), config=TransplantConfig(method="scaled", options={"nosuch": 3}))
    with pytest.raises(ValueError, match="'scale' must be a number"):
        transplant(str(tiny_model_dir), str(new_tokenizer_dir), config=TransplantConfig(method="scaled", options={"scale": "abc"}))
    with pytest.raises(ValueError, match=r"must be from 1 \(no padding\) to 65,536, got 0"):
        transplant(str(tiny_model_dir), str(new_tokenizer_dir), config=TransplantConfig(pad_to_multiple_of=0))
    with pytest.raises(ValueError, match="does not use a donor"):
        transplant(str(tiny_model_dir), str(new_tokenizer_dir), config=TransplantConfig(method="mean", donor=str(tiny_model_dir)))
    (tmp_path / "exists").mkdir()
    with pytest.raises(FileExistsError):
        transplant(str(tiny_model_dir), str(new_tokenizer_dir), out=tmp_path / "exists")
    assert load_tokenizer(new_tokenizer_dir).vocab_size == 360


def test_warns_when_digit_schemes_differ(tiny_model_dir, tmp_path, caplog):
    from tokenshift.measure.digits import digit_scheme
    from tokenshift.train import TrainConfig, train_tokenizer

    corpus = tmp_path / "numbers.txt"
    corpus.write_text("\n".join(f"{line} {n * 7919} {n * 104729} {n}" for n, line in enumerate(synthetic_corpus(300))))
    folder = tmp_path / "group3"
    train_tokenizer([str(corpus)], TrainConfig(vocab_size=600, digits="group3-left", special_tokens=("<|endoftext|>",)), out=folder)
    new_scheme = digit_scheme(load_tokenizer(folder))  # digits merge in groups here, never across a group of three
    assert new_scheme != digit_scheme(load_tokenizer(tiny_model_dir)) == "single"
    with caplog.at_level("WARNING"):
        _, _, report = transplant(str(tiny_model_dir), str(folder))
    assert report.digits_new == new_scheme and len(report.warnings) == 1 and "split digits differently" in report.warnings[0]
    assert "split digits differently" in caplog.text
    _, _, same = transplant(str(tiny_model_dir), str(tiny_model_dir))
    assert same.warnings == []


def test_superword_rows_can_be_built_from_their_first_and_last_piece():
    from tokenshift.transplant.methods.scaled import scaled_rows
    from tokenshift.transplant.plan import TransplantPlan, spans_words

    assert spans_words(b" the file") and spans_words(b"voir la") and not spans_words(b" file") and not spans_words(b"file\n")
    old = torch.tensor([[1.0, 0], [0, 1.0], [3.0, 3.0]])
    long = lambda values: torch.tensor(values, dtype=torch.long)  # noqa: E731
    # token 3 = pieces 0 1 (a subword), token 4 = pieces 0 1 2 (a superword)
    plan = TransplantPlan(new_size=5, old_size=3, assignment=["exact"] * 3 + ["composed"] * 2, copy_new=long([0, 1, 2]),
                          copy_old=long([0, 1, 2]), composed=long([3, 4]), piece_ids=long([0, 1, 0, 1, 2]), piece_offsets=long([0, 2, 5]),
                          piece_bytes=torch.ones(5), fallback=long([]), superword=torch.tensor([False, True]))
    assert plan.piece_positions().tolist() == [1, 2, 1, 2, 3]
    same = scaled_rows(old, plan, scale=0.5, length_power=0.0)
    torch.testing.assert_close(same, torch.tensor([[0.25, 0.25], [2 / 3, 2 / 3]]))
    rows = scaled_rows(old, plan, scale=0.5, length_power=0.0, superword_pieces="first+last")
    torch.testing.assert_close(rows[0], same[0])  # a subword keeps every piece
    torch.testing.assert_close(rows[1], 0.5 * (old[0] + old[2]) / 2)  # the superword: its first and last piece
    with pytest.raises(ValueError, match="superword_pieces 'middle': choose all or first"):
        scaled_rows(old, plan, superword_pieces="middle")


def test_scaled_rows_are_the_shrunk_length_weighted_mean(tiny_model_dir, new_tokenizer_dir):
    from tokenshift.transplant.methods.scaled import scaled_rows
    from tokenshift.transplant.methods.subword import piece_mean

    loaded = load_model(str(tiny_model_dir), device="cpu")
    old = loaded.model.get_input_embeddings().weight.detach()
    plan = build_plan(loaded.tokenizer, load_tokenizer(new_tokenizer_dir), old_rows=old.shape[0])
    torch.testing.assert_close(scaled_rows(old, plan, scale=0.5), 0.5 * piece_mean(old, plan, weights=plan.piece_bytes))
    with pytest.raises(ValueError, match="scale must be in"):
        scaled_rows(old, plan, scale=0.0)
    # length_power 0 weighs every piece the same: the plain (FVT) mean, shrunk
    torch.testing.assert_close(scaled_rows(old, plan, scale=0.5, length_power=0.0), 0.5 * piece_mean(old, plan))
    torch.testing.assert_close(scaled_rows(old, plan, scale=1.0, length_power=2.0), piece_mean(old, plan, weights=plan.piece_bytes ** 2))
    with pytest.raises(ValueError, match="length_power must be in"):
        scaled_rows(old, plan, length_power=-1.0)


def test_document_start_token_takes_the_old_document_start(tiny_model_dir, tmp_path):
    """Gemma-style <bos> (added to every document) onto a model whose documents start with <|endoftext|>:
    the new document start copies the old one's row, whatever the old BOS role is (a chat marker in SmolLM2)."""
    new_dir = other_tokenizer(tmp_path / "bos", specials=("<bos>", "<eos>"))
    (new_dir / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<bos>", "eos_token": "<eos>", "add_bos_token": True}))
    old, new = load_tokenizer(str(tiny_model_dir)), load_tokenizer(str(new_dir))
    assert new.conditioning_token() == new.special.bos
    plan = build_plan(old, new, old_rows=old.vocab_size)
    copies = dict(zip(plan.copy_new.tolist(), plan.copy_old.tolist()))
    assert copies[new.special.bos] == old.conditioning_token()
    assert plan.assignment[new.special.bos] == "special"


def reference_omp(targets, atoms, k):
    """Textbook OMP, one target at a time: pick the atom of largest |cosine| with the residual, refit all."""
    atoms_n = torch.nn.functional.normalize(atoms, dim=1)
    out_idx, out_coef = [], []
    for y in targets:
        chosen, residual = [], y.clone()
        for _ in range(k):
            scores = (atoms_n @ residual).abs()
            scores[chosen] = -1
            chosen.append(int(scores.argmax()))
            coef = torch.linalg.lstsq(atoms[chosen].T, y[:, None]).solution[:, 0]
            residual = y - atoms[chosen].T @ coef
        out_idx.append(chosen)
        out_coef.append(coef)
    return torch.tensor(out_idx), torch.stack(out_coef)


def test_batched_omp_matches_textbook_omp(monkeypatch):
    from tokenshift.transplant.methods import omp

    monkeypatch.setattr(omp, "_fast_bf16_matmul", lambda device_type: False)  # float32 search: picks comparable exactly
    gen = torch.Generator().manual_seed(0)
    atoms = torch.randn(300, 24, generator=gen) * (0.5 + 2.5 * torch.rand(300, 1, generator=gen))
    targets = torch.randn(40, 24, generator=gen)
    for gram_bytes in (omp.GRAM_BYTES, 0):  # the stored Gram matrix and the per-step columns
        monkeypatch.setattr(omp, "GRAM_BYTES", gram_bytes)
        idx, coef = omp.batched_omp(targets, atoms, k=5, candidates=len(atoms), chunk=16)
        ref_idx, ref_coef = reference_omp(targets, atoms, 5)
        assert torch.equal(idx, ref_idx)
        assert torch.allclose(coef, ref_coef, atol=1e-4, rtol=1e-3)
    # narrowed to a few candidates, the fit can only be as good as exact OMP's, never better
    idx, coef = omp.batched_omp(targets, atoms, k=5, candidates=20)
    fit = lambda i, c: ((targets - torch.einsum("bk,bkd->bd", c, atoms[i])).norm(dim=1)).mean()  # noqa: E731
    assert fit(idx, coef) >= fit(ref_idx, ref_coef) - 1e-5


def test_extension_transplant_copies_old_rows_and_pads(tiny_model_dir, tmp_path):
    """An extension keeps every old row at its id; auto picks the extension's method; rows are padded
    to a multiple of 64 with the mean row, and the tokenizer never produces a padded id."""
    import regex

    from tokenshift.train import TrainConfig, train_tokenizer

    from conftest import synthetic_corpus

    (tmp_path / "new.txt").write_text("\n".join(f"{line} anticonstitutionnellement développement" for line in synthetic_corpus(200)))
    old = load_model(str(tiny_model_dir), device="cpu", dtype="float32")
    train_tokenizer([str(tmp_path / "new.txt")], TrainConfig(vocab_size=old.tokenizer.vocab_size + 30, extend=str(tiny_model_dir), protect=()),
                    out=tmp_path / "ext")
    lm, new, report = transplant(str(tiny_model_dir), str(tmp_path / "ext"), out=tmp_path / "moved")
    assert report.extension and report.method == "scaled" and "extends" in report.method_reason
    assert report.options == {"scale": 0.92, "length_power": 0.0, "superword_pieces": "first+last"}
    assert report.copied_ids == [[0, old.tokenizer.vocab_size]]
    rows = lm.get_input_embeddings().weight
    old_rows = old.model.get_input_embeddings().weight
    assert torch.equal(rows[: old_rows.shape[0]], old_rows)
    assert rows.shape[0] % 64 == 0 and rows.shape[0] > new.vocab_size == old.tokenizer.vocab_size + 30
    padded = rows[new.vocab_size :]
    assert torch.allclose(padded, rows[: new.vocab_size].mean(0).expand_as(padded), atol=1e-6)
    config = json.loads((tmp_path / "moved" / "config.json").read_text())
    assert config["vocab_size"] == rows.shape[0] == report.embedding_rows
    rng = __import__("random").Random(0)
    alphabet = "abcdeéèfghlmnopqrstu 0123456789,.北京😀"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80))) for _ in range(300)] + synthetic_corpus(50)
    assert max(max(ids, default=0) for ids in new.encode_batch(texts)) < new.vocab_size
    assert not regex.search(r"\d\d", "".join(new.id_to_token(i) for i in range(old.tokenizer.vocab_size, new.vocab_size)))


def test_transplant_leaves_the_callers_tokenizer_untouched(tiny_model_dir, tmp_path):
    import shutil

    model_dir = tmp_path / "with-template"
    shutil.copytree(tiny_model_dir, model_dir)
    config_path = model_dir / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["chat_template"] = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    config_path.write_text(json.dumps(config))
    new = load_tokenizer(str(tiny_model_dir))
    assert new.chat_template is None
    _, returned, _ = transplant(str(model_dir), new)
    assert returned.chat_template == config["chat_template"]  # the template came along, on a copy
    assert new.chat_template is None and returned is not new
    renamed = new.replaced(name="other")
    assert renamed.name == "other" and new.name != "other"


def test_a_sentencepiece_token_keeps_its_own_row_not_its_byte_fallback_twin():
    """Gemma-style vocabularies spell "e" both as the piece and as <0x65>, the byte row first: an
    extension must copy each old piece from itself (identity plan), never from the byte row."""
    from conftest import spm_style_backend
    from tokenshift.tokenizer import Tokenizer
    from tokenshift.tokenizer.core import roles_from_names

    backend, _ = spm_style_backend()
    tokenizer = Tokenizer(backend, name="spm", special=roles_from_names(backend, adds_bos=True))
    vocab = backend.get_vocab()
    assert "e" in vocab and "<0x65>" in vocab and vocab["<0x65>"] < vocab["e"]
    plan = build_plan(tokenizer, tokenizer, old_rows=tokenizer.vocab_size)
    exact = [i for i, a in enumerate(plan.assignment) if a == "exact"]
    copied = dict(zip(plan.copy_new.tolist(), plan.copy_old.tolist()))
    assert vocab["e"] in exact and all(copied[i] == i for i in exact)
