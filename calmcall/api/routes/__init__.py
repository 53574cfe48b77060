"""One module per resource; ``ROUTERS`` is what the app includes."""

from . import ask, embed, grade, health, learners, questions, reports

ROUTERS = [health.router, ask.router, grade.router, questions.router, learners.router, reports.router,
           embed.router]
