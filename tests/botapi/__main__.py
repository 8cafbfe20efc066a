"""Run the emulator by hand: ``python -m tests.botapi [--port N] [--token T]`` from /work/main."""
import argparse
import time

from .server import BotApiEmulator


def main() -> None:
    parser = argparse.ArgumentParser(description="Telegram Bot API emulator on 127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default="123456:TEST-token")
    args = parser.parse_args()
    with BotApiEmulator(args.token, port=args.port) as emu:
        print(f"base_url={emu.base_url} token={emu.token} (Ctrl-C to stop)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
