import pytest

from calmcall.language import detect


@pytest.mark.parametrize(
    "text,lang",
    [
        ("What should I do if the caller swears at me?", "en"),
        ("Vad gör jag om kunden svär åt mig i telefon?", "sv"),
        ("Mit tegyek, ha az ügyfél káromkodik velem?", "hu"),
        ("Cosa faccio se il cliente mi insulta al telefono?", "it"),
        ("Wat moet ik doen als de klant tegen me scheldt?", "nl"),
        ("Was mache ich, wenn der Kunde mich am Telefon beschimpft?", "de"),
        ("¿Qué hago si el cliente me insulta por teléfono?", "es"),
        ("Que faire si le client m'insulte au téléphone ?", "fr"),
    ],
)
def test_detects_supported_languages(text, lang):
    assert detect(text) == lang


def test_no_signal_falls_back_to_default():
    assert detect("???") == "en"
    assert detect("12345 !!!", default="sv") == "sv"
