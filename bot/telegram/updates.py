"""Who an update is from and where to answer it. The handlers only see updates of private chats
(routing.py's guard turns the others away), which always have both."""
from __future__ import annotations

from telegram import Update, User


def sender_of(update: Update) -> User:
    user = update.effective_user
    if user is None:
        raise ValueError(f"update {update.update_id} has no user")
    return user


def chat_id_of(update: Update) -> int:
    chat = update.effective_chat
    if chat is None:
        raise ValueError(f"update {update.update_id} has no chat")
    return chat.id


def language_of(update: Update) -> str | None:
    """The language the user's Telegram app reports."""
    user = update.effective_user
    return user.language_code if user else None
