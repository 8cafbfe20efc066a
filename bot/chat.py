"""The terminal shell: the same conversation as on Telegram, on stdin and stdout, with no token."""
from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from bot.conversation import Conversation
from bot.outcome import Outcome
from bot.storage import Storage
from dialogs.engine import Command, Press, Text
from dialogs.model import Reply
from messages import plain, render, render_reply

LOCAL_USER = 0   # Telegram user ids are positive: the terminal user cannot collide with one
_COMMANDS = {"/back": "back", "/skip": "skip", "/cancel": "cancel", "/continue": "resume"}


class TerminalChat:
    def __init__(self, storage: Storage, out: TextIO = sys.stdout, user_id: int = LOCAL_USER):
        self.conversation = Conversation(storage, default_zone=datetime.now().astimezone().tzinfo or timezone.utc)
        self.out = out
        self.user_id = user_id
        self.buttons: list[str] = []   # the option ids of the last keyboard, numbered from 1

    def show(self, outcome: Outcome) -> None:
        if outcome.replies:
            self.buttons = []   # numbers refer to the newest keyboard only
        for reply in outcome.replies:
            rendered = render_reply(outcome.locale, reply)
            self.out.write(plain(rendered.text).strip() + "\n")
            if rendered.buttons:
                self.buttons = [option for option, _ in rendered.buttons]
                for number, (_, label) in enumerate(rendered.buttons, start=1):
                    self.out.write(f"  {number}) {label}\n")
            self.out.write("\n")
        self.out.flush()

    async def calendar(self) -> None:
        """/calendar: the active case's deadlines as an .ics file in the current folder."""
        outcome = await self.conversation.calendar(self.user_id)
        for document in outcome.documents:
            path = Path.cwd() / document.filename
            path.write_bytes(document.content)
            outcome.replies.append(Reply("calendar_written", {"path": str(path)}))
        self.show(outcome)

    async def line(self, text: str) -> bool:
        """Handle one typed line; False when the user asked to quit."""
        stripped = text.strip()
        word, _, rest = stripped.partition(" ")
        conv, uid = self.conversation, self.user_id
        if word in ("/quit", "/exit"):
            return False
        if word == "/help":
            locale = await conv.locale(uid)
            self.out.write(plain(render(locale, "help_terminal")) + "\n\n")
        elif word == "/new":
            self.show(await conv.new_case(uid))
        elif word == "/status":
            self.show(await conv.status(uid, full=rest.strip().lower() in ("full", "all", "全部", "完整")))
        elif word == "/calendar":
            await self.calendar()
        elif word == "/language":
            self.show(await conv.set_language(uid, rest))
        elif word in _COMMANDS:
            self.show(await conv.handle(uid, Command(_COMMANDS[word])))
        elif word.startswith("/"):
            locale = await conv.locale(uid)
            self.out.write(plain(render(locale, "err.unknown_command")) + "\n\n")
        elif stripped.isdigit() and 1 <= int(stripped) <= len(self.buttons):
            option = self.buttons[int(stripped) - 1]
            if option.startswith("lang:"):
                self.show(await conv.set_language(uid, option[5:]))
            elif option.startswith("status:"):
                self.show(await conv.status(uid, full=True))
            elif option.startswith("calendar"):
                await self.calendar()
            else:
                self.show(await conv.handle(uid, Press(option)))
        else:
            self.show(await conv.handle(uid, Text(text)))
        return True


async def run_chat(db_path: str, lang: str | None, stdin: TextIO = sys.stdin, out: TextIO = sys.stdout) -> int:
    storage = await Storage.open(db_path)
    try:
        chat = TerminalChat(storage, out)
        if lang:
            await chat.conversation.set_language(chat.user_id, lang)
        chat.show(await chat.conversation.start(chat.user_id))
        interactive = stdin.isatty()
        while True:
            if interactive:
                out.write("> ")
                out.flush()
            raw = stdin.readline()
            if not raw:
                break
            if not await chat.line(raw.rstrip("\n")):
                break
        locale = await chat.conversation.locale(chat.user_id)
        out.write(plain(render(locale, "goodbye")) + "\n")
        return 0
    finally:
        await storage.close()
