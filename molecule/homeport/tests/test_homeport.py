"""The preflight let the valid configuration through and refused the bad ones before the next task ran."""

RESULTS = "/var/lib/homeport-test"


def test_valid_configuration_passed(host):
    assert host.file(f"{RESULTS}/converged").content_string == "passed\n"


def test_budget_refused_before_any_change(host):
    assert not host.file(f"{RESULTS}/budget-not-refused").exists
    msg = host.file(f"{RESULTS}/budget-refused").content_string
    assert msg.startswith("homeport_memory_budget: 999t")
    assert "host's RAM" in msg


def test_unknown_role_refused_before_any_change(host):
    assert not host.file(f"{RESULTS}/roles-not-refused").exists
    msg = host.file(f"{RESULTS}/roles-refused").content_string
    assert "homeport_roles" in msg and "cloud" in msg


def test_preflight_changed_nothing_on_the_host(host):
    # the role only reads: it never creates its state directory itself
    assert not host.file("/var/lib/homeport").exists
