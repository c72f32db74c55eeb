"""docker-compose.yaml, checked without a Docker engine.

- it is a valid Compose file: the Compose Specification's JSON schema (vendored in
  tests/dags/data/, see its README) accepts it, before and after variable interpolation;
- everything it names exists: build contexts, Dockerfiles, mounted files, the files the
  Dockerfile copies, the programs and subcommands its services run (parsed by Airflow's
  own CLI parser, pyspark's spark-class, movierec's CLI);
- images are pinned, ports bind to loopback, no secret is written in the file, and every
  variable it needs is in .env.example;
- the init scripts run for real: the PostgreSQL one against a throwaway server, the
  Airflow one against a SQLite Airflow.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import zipfile
from pathlib import Path

import pytest
import yaml
from dag_helpers import PROJECT, VENV_BIN, base_env

COMPOSE_FILE = PROJECT / "docker-compose.yaml"
ENV_EXAMPLE = PROJECT / ".env.example"
DOCKERFILE = PROJECT / "docker" / "Dockerfile"
SCHEMA_FILE = Path(__file__).parent / "data" / "compose-spec.json"
SCHEMA_SHA256 = "d549057ebc2925f39f62799eab0db7b9e2c18b35b6c00595199116da3ed10e64"
# host folders that `make data` creates (git-ignored): mounted, but not part of the repository
CREATED_BY_MAKE = {"./data"}
ONE_SHOT = {"airflow-init"}

VAR = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+])?(?P<arg>[^}]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(value, env: dict[str, str]):
    """Compose's variable interpolation: ${VAR}, $VAR, ${VAR:-d}, ${VAR-d}, ${VAR:?e}, ${VAR?e},
    ${VAR:+a}, ${VAR+a}; `$$` is a literal `$`."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match) -> str:
        name = m.group("braced") or m.group("bare")
        op, arg = m.group("op"), m.group("arg") or ""
        present, nonempty = name in env, bool(env.get(name))
        if op in (":-", "-"):
            return env[name] if (nonempty if op == ":-" else present) else arg
        if op in (":?", "?"):
            if not (nonempty if op == ":?" else present):
                raise KeyError(f"{name}: {arg}")
            return env[name]
        if op in (":+", "+"):
            return arg if (nonempty if op == ":+" else present) else ""
        return env.get(name, "")

    parts = value.split("$$")
    return "$".join(VAR.sub(one, part) for part in parts)


def variables(value) -> list[tuple[str, str | None]]:
    """(name, operator) of every variable reference in a loaded compose document."""
    found = []
    if isinstance(value, dict):
        for v in value.values():
            found += variables(v)
    elif isinstance(value, list):
        for v in value:
            found += variables(v)
    elif isinstance(value, str):
        for part in value.split("$$"):
            found += [(m.group("braced") or m.group("bare"), m.group("op")) for m in VAR.finditer(part)]
    return found


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


@pytest.fixture(scope="module")
def raw():
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def compose(raw):
    """The file as `docker compose config` would see it with .env copied from .env.example."""
    return interpolate(raw, env_example())


@pytest.fixture(scope="module")
def validator():
    from jsonschema import Draft202012Validator

    schema = json.loads(SCHEMA_FILE.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def command_of(service: dict) -> list[str]:
    cmd = service.get("command")
    return shlex.split(cmd) if isinstance(cmd, str) else list(cmd or [])


# --- the file is a Compose file -----------------------------------------------------------


def test_vendored_schema_is_the_compose_specification():
    import hashlib

    assert hashlib.sha256(SCHEMA_FILE.read_bytes()).hexdigest() == SCHEMA_SHA256
    schema = json.loads(SCHEMA_FILE.read_text())
    assert schema["$id"] == "compose_spec.json" and schema["title"] == "Compose Specification"


def test_compose_file_is_valid_before_and_after_interpolation(raw, compose, validator):
    for document in (raw, compose):
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
        assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_the_schema_catches_mistakes(compose, validator):
    """The validation can fail: an unknown service key and a bad depends_on condition."""
    import copy

    broken = copy.deepcopy(compose)
    broken["services"]["api"]["helthcheck"] = broken["services"]["api"].pop("healthcheck")
    broken["services"]["airflow-apiserver"]["depends_on"]["airflow-init"]["condition"] = "service_done"
    assert len(list(validator.iter_errors(broken))) >= 2


def test_expected_services(compose):
    assert set(compose["services"]) == {
        "postgres",
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "spark-master",
        "spark-worker",
        "api",
    }


def test_services_wait_for_what_they_need(compose):
    services = compose["services"]
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor"):
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    assert services["airflow-init"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["airflow-scheduler"]["depends_on"]["spark-master"]["condition"] == "service_healthy"
    assert services["spark-worker"]["depends_on"]["spark-master"]["condition"] == "service_healthy"
    assert services["api"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name, service in services.items():
        for dep in service.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown {dep}"


def test_every_long_running_service_has_a_healthcheck(compose):
    for name, service in compose["services"].items():
        if name in ONE_SHOT:
            assert service.get("restart") == "no"
            continue
        check = service.get("healthcheck", {})
        assert check.get("test"), f"{name} has no healthcheck"


# --- names that must exist ----------------------------------------------------------------


def test_build_context_and_dockerfile_exist(compose):
    builds = {json.dumps(s["build"], sort_keys=True) for s in compose["services"].values() if "build" in s}
    assert builds, "the project image is built from docker/"
    for build in map(json.loads, builds):
        context = PROJECT / build["context"]
        assert context.is_dir()
        assert (context / build["dockerfile"]).is_file()


def test_every_mounted_host_path_exists(compose):
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source")
            if source.startswith((".", "/")):
                if source in CREATED_BY_MAKE:  # made by `make data`, never committed
                    assert f"/{source[2:]}/" in (PROJECT / ".gitignore").read_text().split()
                    continue
                assert (PROJECT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in compose["volumes"], f"{name} uses undeclared volume {source}"


def test_files_the_dockerfile_copies_exist():
    copies = re.findall(r"^COPY\s+(?:--\S+\s+)*(.+)$", DOCKERFILE.read_text(), flags=re.M)
    assert copies
    for line in copies:
        *sources, _dest = line.split()
        for source in sources:
            assert (PROJECT / source).exists(), f"Dockerfile copies missing {source}"


def test_images_are_pinned(compose):
    tag = re.compile(r"^[a-z0-9][a-z0-9._/-]*:(?!latest$)[A-Za-z0-9._-]*\d[A-Za-z0-9._-]*$")
    images = {s["image"] for s in compose["services"].values() if "image" in s}
    images |= set(re.findall(r"^FROM\s+(\S+)", DOCKERFILE.read_text(), flags=re.M))
    assert images
    for image in images:
        assert tag.match(image), f"image {image!r} is not pinned to a version tag"


def test_airflow_commands_parse_with_airflow_own_cli(compose):
    from airflow.cli.cli_parser import get_parser

    commands = []
    for service in compose["services"].values():
        cmd = command_of(service)
        if cmd[:1] == ["airflow"]:
            commands.append(cmd[1:])
        check = service.get("healthcheck", {}).get("test", [])
        if check[:1] == ["CMD-SHELL"] and check[1].startswith("airflow "):
            commands.append(shlex.split(interpolate(check[1], {}).replace("$HOSTNAME", "host"))[1:])
    assert {c[0] for c in commands} >= {"api-server", "scheduler", "dag-processor", "jobs"}
    parser = get_parser()
    for args in commands:
        parsed = parser.parse_args(args)
        assert callable(parsed.func), args
    with pytest.raises(SystemExit):
        parser.parse_args(["schedulr"])


def test_airflow_settings_in_the_environment_are_real_airflow_options(compose):
    from airflow.configuration import conf

    described = conf.configuration_description
    env = {}
    for service in compose["services"].values():
        env.update(service.get("environment") or {})
    options = [k for k in env if k.startswith("AIRFLOW__")]
    assert len(options) > 10
    for name in options:
        _, section, key = name.split("__", 2)
        assert key.lower() in described.get(section.lower(), {}).get("options", {}), f"{name} is not an Airflow option"


def test_spark_connection_points_the_tasks_at_the_spark_master(compose, monkeypatch):
    from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook

    conn = compose["services"]["airflow-scheduler"]["environment"]["AIRFLOW_CONN_SPARK_DEFAULT"]
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", conn)
    hook = SparkSubmitHook(conn_id="spark_default")
    master = compose["services"]["spark-master"]
    port = command_of(master)[command_of(master).index("--port") + 1]
    assert hook._connection["master"] == f"spark://spark-master:{port}"
    assert hook._connection["deploy_mode"] == "client"  # standalone cannot run Python drivers in cluster mode
    worker_cmd = command_of(compose["services"]["spark-worker"])
    assert f"spark://spark-master:{port}" in worker_cmd


def test_spark_services_run_real_spark_classes_with_real_options(compose):
    jars = list((Path(__import__("pyspark").__file__).parent / "jars").glob("spark-core_*.jar"))
    assert jars
    classes = set(zipfile.ZipFile(jars[0]).namelist())
    for name in ("spark-master", "spark-worker"):
        cmd = command_of(compose["services"][name])
        assert cmd[0] == "spark-class" and (VENV_BIN / "spark-class").exists()
        assert cmd[1].replace(".", "/") + ".class" in classes
        usage = subprocess.run(
            [str(VENV_BIN / "spark-class"), cmd[1], "--help"],
            capture_output=True,
            text=True,
            timeout=120,
            env=base_env(),
        )
        text = usage.stdout + usage.stderr
        assert "Usage:" in text, text[-2000:]
        for option in (a for a in cmd[2:] if a.startswith("--")):
            assert re.search(rf"\s{re.escape(option)}\b", text), f"{name}: {option} is not an option of {cmd[1]}"


def test_api_service_runs_movierec_serve_under_gunicorn(compose):
    cmd = command_of(compose["services"]["api"])
    assert cmd[:2] == ["movierec", "serve"]
    done = subprocess.run(
        [str(VENV_BIN / "movierec"), *cmd[1:], "--dry-run"],
        capture_output=True,
        text=True,
        timeout=120,
        env=base_env(MOVIEREC_DB_URL=compose["services"]["api"]["environment"]["MOVIEREC_DB_URL"]),
    )
    assert done.returncode == 0, done.stderr
    assert "gunicorn" in done.stdout and "serving.wsgi:app" in done.stdout and "0.0.0.0:8000" in done.stdout


def test_airflow_init_runs_the_script_the_image_holds(compose):
    cmd = command_of(compose["services"]["airflow-init"])
    assert cmd[0] == "bash"
    in_image = cmd[1]
    dockerfile = DOCKERFILE.read_text()
    workdir = re.findall(r"^WORKDIR\s+(\S+)", dockerfile, flags=re.M)[-1]
    copies = {dest: src for src, dest in re.findall(r"^COPY\s+(?:--\S+\s+)*(\S+)\s+(\S+)$", dockerfile, flags=re.M)}
    local = [src for dest, src in copies.items() if os.path.normpath(os.path.join(workdir, dest)) == in_image]
    assert local, f"{in_image} is not copied into the image"
    script = PROJECT / local[0]
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0


def test_healthchecks_are_runnable(compose):
    ports = {
        "airflow-apiserver": "8080",
        "airflow-scheduler": "8974",
        "spark-master": "8081",
        "spark-worker": "8082",
        "api": "8000",
    }
    for name, service in compose["services"].items():
        test = service.get("healthcheck", {}).get("test")
        if not test:
            continue
        if test[0] == "CMD" and test[1] == "python":
            code = test[test.index("-c") + 1]
            compile(code, f"{name}-healthcheck", "exec")
            assert f"localhost:{ports[name]}/" in code, name
        elif test[0] == "CMD-SHELL":
            assert subprocess.run(["bash", "-n", "-c", interpolate(test[1], {})]).returncode == 0, name


def test_the_api_healthcheck_route_exists():
    from movierec.config import from_env
    from serving import create_app

    app = create_app({"SETTINGS": from_env({}, db_url="sqlite://"), "TESTING": True})
    assert "/healthz" in {rule.rule for rule in app.url_map.iter_rules()}


# --- safety -------------------------------------------------------------------------------


def test_ports_bind_to_loopback_only(compose):
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_no_secret_is_written_in_the_file(raw):
    secretish = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|_KEY$", re.I)
    sentinel = {name: f"<{name}>" for name, _ in variables(raw)}
    resolved = interpolate(raw, sentinel)
    checked = 0
    for name, service in resolved["services"].items():
        for key, value in (service.get("environment") or {}).items():
            value = str(value)
            if secretish.search(key) and not key.endswith("_FILE"):
                assert re.fullmatch(r"<\w+>", value), f"{name}: {key} is written in the file"
                checked += 1
            for user_password in re.findall(r"://[^:/@]+:([^@]+)@", value):
                assert re.fullmatch(r"<\w+>", user_password), f"{name}: {key} has a password in its URL"
                checked += 1
    assert checked >= 8
    assert ".env" in (PROJECT / ".gitignore").read_text().split()


def test_every_variable_it_needs_is_in_env_example(raw):
    example = env_example()
    used = variables(raw)
    required = {name for name, op in used if op not in (":-", "-")}
    assert required <= set(example), f"missing from .env.example: {sorted(required - set(example))}"
    unused = set(example) - {name for name, _ in used}
    assert not unused, f".env.example sets variables docker-compose.yaml never reads: {sorted(unused)}"


def test_interpolation_follows_the_compose_rules():
    env = {"A": "1", "E": ""}
    assert interpolate("${A}-${B:-d}-${E:-d}-${E-d}-$$A-${A:+x}", env) == "1-d-d--$A-x"
    with pytest.raises(KeyError):
        interpolate("${B:?needed}", env)


# --- init scripts, for real ---------------------------------------------------------------


@pytest.mark.postgres
def test_postgres_init_script_creates_both_databases_with_their_own_owners(postgres_server):
    import sqlalchemy as sa

    script = PROJECT / "docker" / "postgres" / "init-databases.sh"
    psql_dir = postgres_server.bin_dir
    env = base_env(
        PATH=f"{psql_dir}{os.pathsep}{os.environ['PATH']}",
        PGHOST="127.0.0.1",
        PGPORT=str(postgres_server.port),
        POSTGRES_USER="postgres",
        POSTGRES_DB="postgres",
        AIRFLOW_DB_PASSWORD="pw-airflow",
        MOVIEREC_DB_PASSWORD="pw-movierec",
    )
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    engine = sa.create_engine(postgres_server.url())
    with engine.connect() as conn:
        owners = dict(
            conn.execute(
                sa.text(
                    "SELECT datname, pg_get_userbyid(datdba) FROM pg_database WHERE datname IN ('airflow', 'movierec')"
                )
            ).all()
        )
    assert owners == {"airflow": "airflow", "movierec": "movierec"}
    # the movierec role can create the store's tables in its own database
    url = postgres_server.url("movierec").replace("postgres@", "movierec@", 1)
    with sa.create_engine(url).begin() as conn:
        conn.execute(sa.text("CREATE TABLE probe (id INTEGER)"))
        assert conn.execute(sa.text("SELECT current_user")).scalar_one() == "movierec"
    again = subprocess.run(
        ["bash", str(script)], env={**env, "AIRFLOW_DB_PASSWORD": ""}, capture_output=True, text=True
    )
    assert again.returncode != 0 and "AIRFLOW_DB_PASSWORD" in again.stderr


@pytest.mark.airflow
def test_airflow_init_script_migrates_and_sets_the_admin_password(tmp_path):
    from dag_helpers import airflow_env

    passwords = tmp_path / "auth" / "passwords.json"
    env = airflow_env(
        tmp_path / "airflow",
        AIRFLOW_ADMIN_PASSWORD="s3cret",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(passwords),
    )
    done = subprocess.run(
        ["bash", str(PROJECT / "docker" / "airflow-init.sh")], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert json.loads(passwords.read_text()) == {"admin": "s3cret"}
    assert oct(passwords.stat().st_mode & 0o777) == "0o600"
    check = subprocess.run(
        [str(VENV_BIN / "airflow"), "db", "check-migrations", "-t", "5"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert check.returncode == 0, check.stdout[-2000:] + check.stderr[-2000:]
