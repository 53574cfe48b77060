"""Speech-to-text figures: CPU seconds per audio second, model load time, peak memory and
word error rate per language, on synthetic speech made now by espeak-ng (needs espeak-ng
and sox; nothing is downloaded).

    python bench/bench_speech.py                     # all five languages
    python bench/bench_speech.py --langs en --threads 2
    python bench/bench_speech.py --prompt-ablation   # also without the disfluency prompt

Each language's reference sentences (eval/speech_sentences.yaml) are spoken one after the
other with half a second between them, as one answer, and transcribed once warm-up is done.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from voice_audio import concat, sentences, silence, speak, wer  # noqa: E402


def make_answer(lang: str, texts: list[str], tmp: Path) -> Path:
    gap = silence(tmp / "gap.wav", 0.5)
    parts = []
    for i, text in enumerate(texts):
        parts += [speak(text, lang, tmp / f"{lang}{i}.wav"), gap]
    return concat(tmp / f"{lang}.wav", *parts[:-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--langs", default="en,sv,hu,it,nl")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt-ablation", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from calmcall.config import Settings
    from calmcall.speech import load_speech, speech_config

    corpus = sentences()
    results = {"threads": args.threads, "languages": {}}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        settings = Settings(data_dir=tmp / "data", speech_threads=args.threads)
        stt = load_speech(settings)
        loads = {}
        for lang in args.langs.split(","):
            ref = stt.model_ref(lang)
            if ref not in loads:
                start = time.perf_counter()
                stt.model(lang)
                loads[ref] = round(time.perf_counter() - start, 2)
        results["model_load_s"] = loads
        prompts = dict(speech_config(settings)["decode"].get("prompts") or {})
        for lang in args.langs.split(","):
            texts = corpus[lang]
            audio = make_answer(lang, texts, tmp).read_bytes()
            stt.transcribe((tmp / f"{lang}0.wav").read_bytes(), lang)  # warm-up
            variants = [("prompt", True)] + ([("no_prompt", False)] if args.prompt_ablation else [])
            for name, use_prompt in variants:
                speech_config(settings)["decode"]["prompts"] = prompts if use_prompt else {}
                wall = time.perf_counter()
                cpu = time.process_time()
                tr = stt.transcribe(audio, lang)
                cpu = time.process_time() - cpu
                wall = time.perf_counter() - wall
                row = {
                    "model": tr.model,
                    "audio_s": round(tr.duration_s, 1),
                    "cpu_s_per_audio_s": round(cpu / tr.duration_s, 3),
                    "wall_s_per_audio_s": round(wall / tr.duration_s, 3),
                    "wer": round(wer([(" ".join(texts), tr.text)]), 3),
                    "text": tr.text,
                }
                results["languages"].setdefault(lang, {})[name] = row
            speech_config(settings)["decode"]["prompts"] = prompts
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if args.json:
        print(json.dumps(results, ensure_ascii=False, indent=1))
        return 0
    print(f"threads {args.threads}; model load {results['model_load_s']}; peak RSS {results['peak_rss_mb']} MB")
    print(f"{'lang':5} {'variant':10} {'model':8} {'audio s':>8} {'CPU s/s':>8} {'wall s/s':>9} {'WER':>6}")
    for lang, variants in results["languages"].items():
        for name, r in variants.items():
            print(f"{lang:5} {name:10} {r['model']:8} {r['audio_s']:8.1f} {r['cpu_s_per_audio_s']:8.3f} "
                  f"{r['wall_s_per_audio_s']:9.3f} {r['wer']:6.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
