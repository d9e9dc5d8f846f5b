"""[sms] in config.toml: the README's examples are valid and show every key; mistakes are one
line naming the key; secrets come only from the environment."""

from __future__ import annotations

import re

import pytest

from notifier.config import HttpSmsApi, KannelGateway, SmsSection, load_config
from notifier.errors import ConfigError
from tests.conftest import REPO, write_config


def _toml_blocks(title: str) -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index(title):]
    return re.search(r"```toml\n(.*?)```", section, re.S).group(1)


def _with(tmp_path, extra: str):
    path = write_config(tmp_path, f"sqlite:///{tmp_path}/x.db")
    path.write_text(path.read_text(encoding="utf-8") + "\n" + extra, encoding="utf-8")
    return load_config(path)


def test_the_readmes_sms_sections_load_and_show_every_key(tmp_path) -> None:
    kannel = _toml_blocks("### The whole `[sms]` section")
    config = _with(tmp_path, kannel)
    assert config.sms.gateway == "kannel" and config.sms.kannel.password_env == "NOTIFIER_KANNEL_PASSWORD"
    shown = set(re.findall(r"^(\w+) =", kannel, re.M))
    assert set(SmsSection.model_fields) - {"http", "kannel"} <= shown and "[sms.kannel]" in kannel
    assert set(KannelGateway.model_fields) <= shown
    api = _toml_blocks("### A commercial HTTP API")
    assert _with(tmp_path, api).sms.http.encoding == "json"
    assert set(HttpSmsApi.model_fields) <= set(re.findall(r"^(\w+) =", api, re.M))


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ('[sms]\nquiet_hours = "22-8"', "[sms].quiet_hours: '22-8' is not a window such as '22:00-08:00'"),
        ('[sms]\ngateway = "http"', '[sms]: gateway = "http" needs an [sms.http] section'),
        ('[sms]\nsender = "Sfera Reporting Ltd"', "[sms].sender: 'Sfera Reporting Ltd' must be a number or at most 11"),
        ('[sms]\nstatus_notices = "everyone"', "[sms].status_notices: Input should be 'phone-only', 'all' or 'none'"),
        ('[sms]\nmax_segments = 0', "[sms].max_segments: Input should be greater than or equal to 1"),
        ('[sms.http]\nurl = "https://x.example/v1"\nfields = { to = "{to}", text = "{text}", x = "{secret}" }',
         "[sms].http.fields: x: unknown placeholder {secret}"),
        ('[sms]\nkannel = { url = "ftp://x" }', "[sms].kannel.url: must be an http:// or https:// URL"),
    ],
)  # fmt: skip
def test_sms_config_mistakes_are_one_line(tmp_path, section: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _with(tmp_path, section)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_gateway_password_comes_from_the_environment_only(tmp_path, monkeypatch) -> None:
    from notifier.delivery.sms import sms_messenger

    monkeypatch.setenv("NOTIFIER_SECRET", "s" * 32)
    monkeypatch.delenv("NOTIFIER_KANNEL_PASSWORD", raising=False)
    config = _with(tmp_path, '[sms]\ngateway = "kannel"\nsender = "Sfera"')
    with pytest.raises(ConfigError, match="NOTIFIER_KANNEL_PASSWORD, which is not set"):
        sms_messenger(config)
    monkeypatch.setenv("NOTIFIER_KANNEL_PASSWORD", "from-the-env")
    assert sms_messenger(config).gateway.password == "from-the-env"
