from pathlib import Path

import pytest

from bot.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[2]


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
        Settings.load({"CALLAGENT_LLM": "groq", "CRM_TIMEOUT_SECS": "soon"})
    assert "soon" in str(info.value)  # not secret
    with pytest.raises(SettingsError):
        Settings.load({"GROQ_API_KEY": "", "CALLAGENT_LLM": "groq"})
    with pytest.raises(SettingsError) as info:
        Settings.load({"GROQ_API_KEY": "gsk_very_secret", "CALLAGENT_LLM": "llama"})
    assert "gsk_very_secret" not in str(info.value)


def test_an_unknown_choice_names_the_setting_and_the_allowed_values():
    with pytest.raises(SettingsError) as info:
        Settings.load({"CALLAGENT_STT": "whisper"})
    message = str(info.value)
    assert "CALLAGENT_STT=whisper" in message
    assert "'moonshine'" in message and "'cartesia'" in message


def test_a_bad_number_names_the_setting():
    with pytest.raises(SettingsError) as info:
        Settings.load({"CALLAGENT_VAD_STOP_SECS": "a while", "CRM_RETRIES": "2.5"})
    message = str(info.value)
    assert "CALLAGENT_VAD_STOP_SECS=a while" in message
    assert "CRM_RETRIES=2.5" in message


def test_choices_ignore_case_and_empty_values_count_as_unset():
    s = Settings.load({"CALLAGENT_TRANSPORT": "WebRTC", "CALLAGENT_LLM": " None ", "PORT": ""})
    assert (s.transport, s.llm, s.port) == ("webrtc", "none", 7860)


def test_the_dotenv_file_in_the_working_folder_is_read(tmp_path, monkeypatch):
    for name in ("PORT", "CALLAGENT_LOG_FORMAT", "CALLAGENT_CRM"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / ".env").write_text(
        "PORT=9001\nCALLAGENT_LOG_FORMAT=json\nCALLAGENT_CRM=none\nNOT_A_SETTING=1\n"
    )
    monkeypatch.chdir(tmp_path)
    s = Settings.load()
    assert (s.port, s.log_format, s.crm) == (9001, "json", "none")
    monkeypatch.setenv("PORT", "9002")
    assert Settings.load().port == 9002


def test_log_format_is_text_or_json():
    assert Settings.load({}).log_format == "text"
    assert Settings.load({"CALLAGENT_LOG_FORMAT": "JSON"}).log_format == "json"
    with pytest.raises(SettingsError) as info:
        Settings.load({"CALLAGENT_LOG_FORMAT": "yaml"})
    assert "CALLAGENT_LOG_FORMAT" in str(info.value) and "'json'" in str(info.value)


def test_the_unused_llm_timeout_setting_is_gone():
    assert "LLM_TIMEOUT_SECS" not in Settings.example_env()


def test_cloud_settings_switch_services():
    s = Settings.load(
        {
            "CALLAGENT_LLM": "groq",
            "GROQ_API_KEY": "gsk_x",
            "CALLAGENT_TTS": "cartesia",
            "CARTESIA_API_KEY": "sk",
            "CALLAGENT_TRANSPORT": "daily",
            "DAILY_ROOM_URL": "https://x.daily.co/r",
        }
    )
    assert (s.llm, s.tts, s.transport) == ("groq", "cartesia", "daily")


def test_env_example_documents_every_setting():
    assert (ROOT / ".env.example").read_text() == Settings.example_env()


def test_keys_in_the_environment_switch_services_on_auto():
    s = Settings.load(
        {"GROQ_API_KEY": "gsk", "CARTESIA_API_KEY": "sk", "DAILY_ROOM_URL": "https://a.daily.co/r"}
    )
    assert (s.llm, s.tts, s.stt, s.transport) == ("groq", "cartesia", "moonshine", "daily")
    s = Settings.load(
        {
            "LIVEKIT_URL": "wss://lk",
            "LIVEKIT_API_KEY": "k",
            "LIVEKIT_API_SECRET": "s",
            "LLM_BASE_URL": "http://127.0.0.1:8000/v1",
            "LLM_MODEL": "m",
        }
    )
    assert (s.transport, s.llm) == ("livekit", "openai")


def test_explicit_choice_wins_over_keys():
    s = Settings.load(
        {
            "GROQ_API_KEY": "gsk",
            "CALLAGENT_LLM": "none",
            "CARTESIA_API_KEY": "k",
            "CALLAGENT_TTS": "piper",
        }
    )
    assert (s.llm, s.tts) == ("none", "piper")
