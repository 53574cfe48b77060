"""CalmCall Coach: interview practice and coaching for handling angry, rude and abusive
callers, grounded in five articles, offline by default.

Public surface (everything else is an implementation detail)::

    from calmcall import Coach
    coach = Coach()                      # settings from CALMCALL_* env vars
    coach.search("What if the caller swears at me?")
    coach.grade("I would listen first...", question="q01_angry_call")
    coach.ask("Should I put an angry caller on hold?")

Nothing heavy happens at import time; models load on first use, once.
"""

__version__ = "0.1.0"
__all__ = ["Coach", "__version__"]


def __getattr__(name):
    if name == "Coach":
        from .coach import Coach

        return Coach
    raise AttributeError(name)
