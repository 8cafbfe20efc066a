"""`refund-advisor chat` end to end: a real subprocess, answers on stdin, a real SQLite file."""
import os
import sqlite3
import subprocess
import sys
from pathlib import Path



def chat(db: Path, lines, *args):
    env = dict(os.environ, REFUND_ADVISOR_DB=str(db), PYTHONIOENCODING="utf-8")
    return subprocess.run([sys.executable, "-m", "bot.cli", "chat", *args], input="\n".join(lines) + "\n",
                          capture_output=True, text=True, encoding="utf-8", env=env, timeout=60)


def test_a_complete_conversation_in_english(tmp_path):
    db = tmp_path / "en.db"
    out = chat(db, [
        "8",                      # United States (numbered option)
        "software licence",
        "Acme Soft",
        "credit card",
        "$49.99",
        "2026-10-03",
        "it is broken",
        "2026-10-05",
        "skip",                   # the statement date (asked for US credit cards): optional
        "yes",
        "2026-10-06",
        "they refused",
        "The licence key never activated and support said no refund.",
        "1",                      # That's right
    ], "--lang", "en")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "Where do you live?" in text
    assert "Defect" in text or "defect" in text.lower()
    assert "$49.99" in text
    # a card chargeback window counted from 3 Oct 2026: 120 days later
    assert "31 Jan 2027" in text
    assert "not legal advice" in text
    rows = sqlite3.connect(db).execute("SELECT status, category FROM cases").fetchall()
    assert rows == [("advised", "defect")]


def test_a_complete_conversation_in_chinese_told_as_a_story(tmp_path):
    db = tmp_path / "zh.db"
    out = chat(db, [
        "我在中国，2026年10月3日在一个投资理财平台充值了1.2万，用银行转账付的。11月5日开始提现一直说系统维护，客服说要先交解冻金才能出款。",
        "某某金融",
        "1",                      # 没错 at the summary (or the next open question's first option)
        "1",
        "1",
    ], "--lang", "zh")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "提现诈骗" in text or "诈骗" in text
    assert "110" in text and "96110" in text
    assert "不构成法律意见" in text or "法律意见" in text


def test_a_hong_kong_scam_told_in_traditional_chinese(tmp_path):
    """Issue 13: --lang zh-Hant, a Hong Kong investment scam: Traditional replies, the bank and 18222."""
    db = tmp_path / "hk.db"
    out = chat(db, [
        "我住在香港，2026年10月3日在一個投資平台用銀行轉帳存了5萬元。11月5日開始提款一直說系統維護，客服說要先交解凍金才能出款。",
        "某某投資",
        "7",                      # 銀行轉帳
        "3",                      # the problem date: skip
        "1", "1", "1",
    ], "--lang", "zh-Hant")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "所在地：香港" in text                                  # the story said Hong Kong
    assert "18222" in text and "反詐騙協調中心" in text
    assert "HK$50,000.00" in text
    assert "不構成法律意見" in text


def test_running_again_offers_to_continue(tmp_path):
    db = tmp_path / "again.db"
    first = chat(db, ["1", "2"], "--lang", "en")
    assert first.returncode == 0
    second = chat(db, ["1"], "--lang", "en")   # 1) Continue this case
    assert "unfinished case" in second.stdout
    assert "Who sold it?" in second.stdout


def test_an_unopenable_database_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"garbage" * 1000)
    out = chat(bad, ["1"])
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "bad.db" in out.stderr
    assert "Traceback" not in out.stderr


def test_bad_setting_is_one_line_and_exit_2(tmp_path):
    env = dict(os.environ, REFUND_ADVISOR_DB=str(tmp_path / "x.db"), REFUND_ADVISOR_FOLLOWUP="soon")
    out = subprocess.run([sys.executable, "-m", "bot.cli", "chat"], input="", capture_output=True, text=True,
                         env=env, timeout=30)
    assert out.returncode == 2 and "REFUND_ADVISOR_FOLLOWUP" in out.stderr


def test_output_piped_into_a_reader_that_stops_early_ends_without_a_traceback(tmp_path):
    """`refund-advisor chat | head -1`: it stops quietly (nothing read is lost: answers are saved before
    the reply is printed)."""
    db = tmp_path / "c.db"
    chat = subprocess.Popen([sys.executable, "-m", "bot.cli", "chat", "--lang", "en", "--db", str(db)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    chat.stdout.readline()
    chat.stdout.close()                     # the reader is gone before the first answer
    _, err = chat.communicate("United Kingdom\nan online course\n".encode(), timeout=60)
    assert b"Traceback" not in err, err.decode()
    assert chat.returncode == 1


def test_not_my_situation_in_the_terminal(tmp_path):
    db = tmp_path / "recat.db"
    answers = ["1", "goods", "Taobao", "Alipay", "300", "yesterday", "1", "yesterday", "no", "skip", "1"]
    out = chat(db, [*answers, "1", "4", "/status full"], "--lang", "en")  # 1: That's not my situation, 4: mismatch
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "1) 🔄 That's not my situation" in text
    assert "Which of these is your situation?" in text
    assert "I now treat your case as Not as described (I had read it as Defective or broken)" in text
    assert "Situation changed by you: Defective or broken → Not as described" in text
    assert "Not as described (your choice; I had read it as Defective or broken)" in text
    rows = sqlite3.connect(db).execute("SELECT status, category FROM cases").fetchall()
    assert rows == [("advised", "mismatch")]


def test_status_calendar_and_the_whole_timeline_in_the_terminal(tmp_path):
    db = tmp_path / "casefile.db"
    env = dict(os.environ, REFUND_ADVISOR_DB=str(db), PYTHONIOENCODING="utf-8", TZ="UTC")
    lines = ["United States", "software licence", "Acme Soft", "credit card", "$49.99", "2026-10-03", "it is broken",
             "2026-10-05", "skip", "yes", "2026-10-06", "they refused", "The key <b>never</b> activated.", "1",
             "I also called them", "/status", "/status full", "/calendar"]
    out = subprocess.run([sys.executable, "-m", "bot.cli", "chat", "--lang", "en"], input="\n".join(lines) + "\n",
                         capture_output=True, text=True, encoding="utf-8", env=env, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    short = out.stdout.split("I added that to this case's timeline.")[1].split("Timeline (America/New_York)")
    status, full = short[1], short[2]
    assert "📅 Next deadline: Card chargeback window" in short[0]
    assert "11 earlier entries: the button below shows the whole timeline." in status
    assert "· Note added: “I also called them”" in status and "· Advice given: Defective or broken" in status
    assert "1) 📜 Whole timeline and advice" in status
    assert "· Amount: $49.99" in full and "· Skipped the question “Statement date”" in full
    assert "· You told what happened: “The key <b>never</b> activated.”" in full
    assert "What to do next" in full, "/status full: the advice too"
    assert "by fixed date" not in full and "7 days from now" not in full
    written = tmp_path / "refund-advisor-case-1.ics"
    assert f"Calendar file written: {written}" in out.stdout
    assert written.read_bytes().startswith(b"BEGIN:VCALENDAR")
