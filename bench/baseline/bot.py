"""The baseline: a minimal python-telegram-bot bot asking the advisor's intake questions.

What a competent developer would write first, by the library's own examples (conversationbot,
persistentconversationbot, timerbot): a ConversationHandler with one state per question,
PicklePersistence with its defaults (written every 60 s and at a clean stop), and JobQueue with
one job per follow-up. Follow-ups are kept in bot_data (so a restart can re-arm them: JobQueue
jobs live in memory only) and sent through AIORateLimiter(max_retries=3).

It does what the product does on the wire for each answer (answer the button press, show the
answer under its question, send the next question with its buttons) and nothing the product
does besides: typed answers are stored as typed (no parsing), no classification, no advice, no
database, English only. It is a floor for the framework's own cost, not a competitor.

    TELEGRAM_BOT_TOKEN, TELEGRAM_API_BASE_URL    as for `refund-advisor run`
    BASELINE_PICKLE                              the persistence file (default baseline.pickle)
    BASELINE_FOLLOWUP                            delays between nudges, like 2d,3d,5d,7d
    python -m bench.botproc baseline [--no-limiter]
"""
from __future__ import annotations

import html
import logging
import os
import sys
import time
import warnings

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import TelegramError
from telegram.ext import (
    AIORateLimiter, Application, ApplicationBuilder, CallbackQueryHandler, CommandHandler, ContextTypes,
    ConversationHandler, MessageHandler, PicklePersistence, filters,
)
from telegram.warnings import PTBUserWarning

log = logging.getLogger("baseline")

YES, SKIP = "_yes", "_skip"
# (node, question, options as (id, label)); a node without options takes typed text.
QUESTIONS: list[tuple[str, str, list[tuple[str, str]]]] = [
    ("jurisdiction", "Where do you live?",
     [("CN", "Mainland China"), ("EU", "EU"), ("UK", "UK"), ("US", "US"), ("OTHER", "Other")]),
    ("purchase_type", "What did you pay for?",
     [("software", "Software licence"), ("subscription", "App or subscription"), ("course", "Online course"),
      ("game", "Game or in-game item"), ("goods", "Physical goods"), ("service", "A service"),
      ("platform_funds", "Money on a platform"), ("other", "Something else")]),
    ("merchant", "Who did you pay? (type the name)", [(SKIP, "Skip")]),
    ("payment_method", "How did you pay?",
     [("credit_card", "Credit card"), ("debit_card", "Debit card"), ("paypal", "PayPal"), ("alipay", "Alipay"),
      ("wechat_pay", "WeChat Pay"), ("app_store", "App store"), ("bank_transfer", "Bank transfer"),
      ("crypto", "Crypto"), ("cash_other", "Cash or other")]),
    ("amount", "How much did you pay? (type the amount)", [(SKIP, "Skip")]),
    ("purchase_date", "When did you pay? (or type a date)", [("today", "Today"), ("yesterday", "Yesterday")]),
    ("problem", "What went wrong?",
     [("defect", "It is broken"), ("mismatch", "Not as described"), ("non_delivery", "Never delivered"),
      ("unauthorized", "Charged without consent"), ("changed_mind", "Changed my mind"),
      ("withdrawal_blocked", "Cannot withdraw"), ("refund_delayed", "Refund delayed"), ("other", "Other")]),
    ("problem_date", "When did it start? (or type a date)",
     [("today", "Today"), ("yesterday", "Yesterday"), (SKIP, "Skip")]),
    ("contacted", "Have you contacted the seller?", [("yes", "Yes"), ("no", "No")]),
    ("contact_date", "When did you contact them? (or type a date)",
     [("today", "Today"), ("yesterday", "Yesterday"), (SKIP, "Skip")]),
    ("seller_answer", "What did they answer?",
     [("none", "Nothing"), ("refused", "They refused"), ("maintenance", "System maintenance"),
      ("promised", "They promised a refund"), ("asked_fees", "They asked for fees")]),
    ("story", "Anything else? Tell the story in your own words.", [(SKIP, "Skip")]),
    ("confirm", "Is this right?", [(YES, "Yes, that's right")]),
]
NODES = [q[0] for q in QUESTIONS]
STATE = {node: i for i, node in enumerate(NODES)}
LABELS = {node: dict(options) for node, _, options in QUESTIONS}
NUDGE = "Any news from the merchant about your refund? (reminder #{fid})"
DEFAULT_FOLLOWUP = "2d,3d,5d,7d"
# Without this, APScheduler drops a job that runs more than 1 s late as "missed": every overdue
# nudge re-armed at start-up (the scheduler starts after post_init) was silently skipped.
JOB_KWARGS = {"misfire_grace_time": None}
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_delays(text: str) -> list[float]:
    return [float(part.strip()[:-1]) * _UNITS[part.strip()[-1]] for part in text.split(",")]


def _keyboard(node: str) -> InlineKeyboardMarkup:
    options = LABELS[node]
    return InlineKeyboardMarkup([[InlineKeyboardButton(label, callback_data=f"q:0:{node}:{option}")]
                                 for option, label in options.items()])


def _next(node: str, answers: dict) -> str | None:
    if node == "contacted" and answers.get("contacted") == "no":
        return "story"
    i = STATE[node] + 1
    return NODES[i] if i < len(NODES) else None


async def _ask(update: Update, context: ContextTypes.DEFAULT_TYPE, node: str, prefix: str = "") -> int:
    text = prefix + html.escape(dict((q[0], q[1]) for q in QUESTIONS)[node])
    sent = await context.bot.send_message(update.effective_chat.id, text, parse_mode=ParseMode.HTML,
                                          reply_markup=_keyboard(node))
    context.user_data["kb"] = (sent.message_id, text)
    return STATE[node]


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    context.user_data["answers"] = {}
    return await _ask(update, context, NODES[0], "Hello! I help you get your money back.\n\n")


def answer_handler(node: str):
    async def answer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
        answers = context.user_data.setdefault("answers", {})
        chat_id = update.effective_chat.id
        if update.callback_query:
            query = update.callback_query
            await query.answer()
            option = query.data.split(":", 3)[3]
            shown = LABELS[node].get(option, option)
        else:
            option = shown = update.message.text
        answers[node] = option
        kb = context.user_data.pop("kb", None)
        if kb:   # show the answer under its question; its buttons go away
            try:
                await context.bot.edit_message_text(f"{kb[1]}\n\n✔️ {html.escape(shown)}", chat_id=chat_id,
                                                    message_id=kb[0], parse_mode=ParseMode.HTML)
            except TelegramError as exc:
                log.info("could not edit the question: %s", exc)
        following = _next(node, answers)
        if following is not None:
            return await _ask(update, context, following)
        summary = "\n".join(f"{k}: {html.escape(str(v))}" for k, v in answers.items())
        await context.bot.send_message(chat_id, f"Thank you. Your case:\n{summary}\n\nI will remind you to follow up.",
                                       parse_mode=ParseMode.HTML)
        schedule_followups(context, chat_id)
        return ConversationHandler.END
    return answer


# ---- follow-ups: one JobQueue job each, recorded in bot_data to be re-armed after a restart ----

def schedule_followups(context: ContextTypes.DEFAULT_TYPE, chat_id: int) -> None:
    data = context.bot_data
    followups = data.setdefault("followups", {})
    due = time.time()
    for delay in context.application.bot_data.get("_delays") or parse_delays(DEFAULT_FOLLOWUP):
        due += delay
        fid = data["next_fid"] = data.get("next_fid", 0) + 1
        followups[fid] = [chat_id, due, "pending"]
        context.job_queue.run_once(nudge, when=max(0.0, due - time.time()), data=fid, name=f"f{fid}",
                                   job_kwargs=JOB_KWARGS)


async def nudge(context: ContextTypes.DEFAULT_TYPE) -> None:
    fid = context.job.data
    record = context.bot_data["followups"].get(fid)
    if record is None or record[2] != "pending":
        return
    await context.bot.send_message(record[0], NUDGE.format(fid=fid))
    record[2] = "sent"


async def rearm(app: Application) -> None:
    """At start-up: one job per pending follow-up found in the persistence, overdue ones at once."""
    t0 = time.perf_counter()
    app.bot_data["_delays"] = parse_delays(os.environ.get("BASELINE_FOLLOWUP") or DEFAULT_FOLLOWUP)
    now = time.time()
    armed = 0
    followups = app.bot_data.get("followups", {})
    # In due order: APScheduler's memory job store keeps a sorted list, and adding in order is cheap.
    for fid, (chat_id, due, state) in sorted(followups.items(), key=lambda kv: kv[1][1]):
        if state == "pending":
            app.job_queue.run_once(nudge, when=max(0.0, due - now), data=fid, name=f"f{fid}", job_kwargs=JOB_KWARGS)
            armed += 1
    log.warning("armed %d follow-up jobs in %.2f s", armed, time.perf_counter() - t0)


def build(token: str, base_url: str, pickle_path: str, no_limiter: bool = False) -> Application:
    warnings.filterwarnings("ignore", category=PTBUserWarning)     # per_message=False with buttons
    limiter = AIORateLimiter(max_retries=3, **({"overall_max_rate": 0} if no_limiter else {}))
    app = (ApplicationBuilder().token(token).base_url(base_url)
           .persistence(PicklePersistence(pickle_path))
           .rate_limiter(limiter)
           .post_init(rearm)
           .build())
    text = filters.TEXT & ~filters.COMMAND
    states = {STATE[node]: [CallbackQueryHandler(answer_handler(node), pattern=f"^q:0:{node}:"),
                            MessageHandler(text, answer_handler(node))] for node in NODES}
    app.add_handler(ConversationHandler(entry_points=[CommandHandler("start", start)], states=states,
                                        fallbacks=[CommandHandler("start", start)],
                                        name="intake", persistent=True, allow_reentry=True))
    return app


def main(no_limiter: bool = False) -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    token = os.environ.get("TELEGRAM_BOT_TOKEN")
    if not token:
        print("baseline: TELEGRAM_BOT_TOKEN is not set", file=sys.stderr)
        return 2
    app = build(token, os.environ.get("TELEGRAM_API_BASE_URL") or "https://api.telegram.org/bot",
                os.environ.get("BASELINE_PICKLE") or "baseline.pickle", no_limiter)
    app.run_polling(allowed_updates=Update.ALL_TYPES, timeout=10)
    return 0
