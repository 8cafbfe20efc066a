"""The Telegram shell, in small parts: `render` (HTML splitting, keyboards, callback data),
`sender` (Bot API calls with retries and the blocked-user rule), `handlers` (one function per
kind of update), `export` (the Markdown export). `bot.telegram_app` wires them together."""
