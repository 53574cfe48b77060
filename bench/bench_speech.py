"""Speech-to-text figures: CPU seconds per audio second, model load time, peak memory and
word error rate per language, on synthetic speech made now by espeak-ng (needs espeak-ng
and sox; nothing is downloaded).

    python bench/bench_speech.py                     # all eight languages
    python bench/bench_speech.py --langs en --threads 2
    python bench/bench_speech.py --prompt-ablation   # also without the disfluency prompt
    python bench/bench_speech.py --guard-ablation    # also keeping the segments Whisper made up

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
    ap.add_argument("--langs", default="en,sv,hu,it,nl,de,es,fr")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt-ablation", action="store_true")
    ap.add_argument("--guard-ablation", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from calmcall.config import Settings
    from calmcall.speech import AudioError, load_speech, speech_config

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
            try:
                stt.transcribe((tmp / f"{lang}0.wav").read_bytes(), lang)  # warm-up
            except AudioError:
                pass  # one synthetic sentence can be all made-up text, dropped: warm all the same
            decode = speech_config(settings)["decode"]
            guard = {k: decode[k] for k in ("max_compression_ratio", "no_speech_prob") if k in decode}
            variants = [("prompt", True, True)] + ([("no_prompt", False, True)] if args.prompt_ablation else []) \
                + ([("no_guard", True, False)] if args.guard_ablation else [])
            for name, use_prompt, use_guard in variants:
                decode["prompts"] = prompts if use_prompt else {}
                decode.update(guard if use_guard else {"max_compression_ratio": 1e9, "no_speech_prob": 2.0})
                wall = time.perf_counter()
                cpu = time.process_time()
                try:
                    tr = stt.transcribe(audio, lang)
                except AudioError as exc:  # every segment made up and dropped
                    results["languages"].setdefault(lang, {})[name] = {"model": stt.model_ref(lang), "error": str(exc),
                                                                       "wer": 1.0}
                    continue
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
            decode["prompts"] = prompts
            decode.update(guard)
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if args.json:
        print(json.dumps(results, ensure_ascii=False, indent=1))
        return 0
    print(f"threads {args.threads}; model load {results['model_load_s']}; peak RSS {results['peak_rss_mb']} MB")
    print(f"{'lang':5} {'variant':10} {'model':8} {'audio s':>8} {'CPU s/s':>8} {'wall s/s':>9} {'WER':>6}")
    for lang, variants in results["languages"].items():
        for name, r in variants.items():
            if "error" in r:
                print(f"{lang:5} {name:10} {r['model']:8} {r['error']}")
                continue
            print(f"{lang:5} {name:10} {r['model']:8} {r['audio_s']:8.1f} {r['cpu_s_per_audio_s']:8.3f} "
                  f"{r['wall_s_per_audio_s']:9.3f} {r['wer']:6.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
