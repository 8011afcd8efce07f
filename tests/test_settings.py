from pathlib import Path

import pytest

from bot.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_are_the_embedded_stack():
    s = Settings.load({})
    assert (s.transport, s.stt, s.tts, s.llm) == ("webrtc", "moonshine", "piper", "none")
    assert s.port == 7860


def test_dotenv_is_read_and_environment_wins(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("PORT=9000\nCALLAGENT_LOG_LEVEL=DEBUG\n")
    s = Settings.load({"PORT": "9100"}, dotenv_path=env_file)
    assert s.port == 9100
    assert s.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"CALLAGENT_TRANSPORT": "zoom"}, "CALLAGENT_TRANSPORT"),
        ({"PORT": "eighty"}, "PORT"),
        ({"CALLAGENT_TRANSPORT": "daily"}, "DAILY_API_KEY"),
        ({"CALLAGENT_TRANSPORT": "livekit", "LIVEKIT_URL": "wss://x"}, "LIVEKIT_API_SECRET"),
        ({"CALLAGENT_LLM": "groq"}, "GROQ_API_KEY"),
        ({"CALLAGENT_TTS": "cartesia"}, "CARTESIA_API_KEY"),
        ({"CALLAGENT_LLM": "openai"}, "LLM_BASE_URL"),
        ({"TWILIO_ACCOUNT_SID": "12345"}, "TWILIO_ACCOUNT_SID"),
        ({"CALLAGENT_AGENT_FILE": "/nope.yaml"}, "CALLAGENT_AGENT_FILE"),
        ({"TWILIO_VALIDATE_SIGNATURES": "maybe"}, "TWILIO_VALIDATE_SIGNATURES"),
    ],
)
def test_bad_settings_name_the_setting_and_the_fix(env, named):
    with pytest.raises(SettingsError) as info:
        Settings.load(env)
    assert named in str(info.value)


def test_secrets_are_not_echoed_in_errors():
    with pytest.raises(SettingsError) as info:
        Settings.load({"CALLAGENT_LLM": "groq", "LLM_TIMEOUT_SECS": "soon"})
    assert "soon" in str(info.value)  # not secret
    with pytest.raises(SettingsError):
        Settings.load({"GROQ_API_KEY": "", "CALLAGENT_LLM": "groq"})


def test_cloud_settings_switch_services():
    s = Settings.load(
        {"CALLAGENT_LLM": "groq", "GROQ_API_KEY": "gsk_x", "CALLAGENT_TTS": "cartesia",
         "CARTESIA_API_KEY": "sk", "CALLAGENT_TRANSPORT": "daily", "DAILY_ROOM_URL": "https://x.daily.co/r"}
    )
    assert (s.llm, s.tts, s.transport) == ("groq", "cartesia", "daily")


def test_env_example_documents_every_setting():
    assert (ROOT / ".env.example").read_text() == Settings.example_env()
