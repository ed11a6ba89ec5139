"""The doctor's tailnet rows: status words, never Python booleans; a laptop without Tailscale only warns."""

from __future__ import annotations

from homeport import doctor, tailnet


def test_tailnet_rows_map_to_status_words(monkeypatch):
    rows = [
        tailnet.Row("tailscale on this machine", True, "Running, 100.64.0.2", ""),
        tailnet.Row("tailnet path to macmini", False, "no pong", "check the node"),
    ]
    seen = {}

    def fake(peers):
        seen["peers"] = list(peers)
        return rows

    monkeypatch.setattr(tailnet, "controller_status", fake)
    checks = doctor.tailnet_checks(["macmini"])
    assert seen["peers"] == ["macmini"]
    assert [(c.check, c.status) for c in checks] == [
        ("tailscale on this machine", "ok"),
        ("tailnet path to macmini", "warn"),
    ]
    assert checks[1].fix == "check the node"


def test_no_tailscale_binary_is_a_warning(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda _name: None)
    checks = doctor.tailnet_checks([])
    assert len(checks) == 1
    assert checks[0].status == "warn"
    assert "not installed" in checks[0].detail
