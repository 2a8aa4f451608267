use std::time::Duration;

use crate::support::{TempDir, http, run_cli};
use serde_json::json;

#[test]
fn version_and_help() {
    let dir = TempDir::new("cli");
    let (code, out, _) = run_cli(&["--version"], dir.path());
    // The commit the binary was built from (issue 19): the checkout's HEAD.
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or("unknown".to_string(), |o| {
            String::from_utf8_lossy(&o.stdout).trim().to_string()
        });
    assert_eq!(
        (code, out.trim()),
        (
            0,
            format!("oxisd {} (commit {head})", env!("CARGO_PKG_VERSION")).as_str()
        )
    );
    let (code, out, _) = run_cli(&["--help"], dir.path());
    assert_eq!(code, 0);
    assert!(
        out.contains("check-config") && out.contains("OXISD_CONFIG"),
        "{out}"
    );
    let (code, _, err) = run_cli(&["--frobnicate"], dir.path());
    assert_eq!(code, 2);
    assert!(err.contains("--frobnicate"), "{err}");
}

#[test]
fn check_config_rejects_unknown_keys_naming_the_path_and_line() {
    let dir = TempDir::new("cli");
    let file = dir.path().join("bad.yaml");
    std::fs::write(&file, "server:\n  name: id.example.org\n  prot: 8090\n").unwrap();
    let (code, _, err) = run_cli(
        &["check-config", "--config", file.to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("server") && err.contains("prot") && err.contains("line 3"),
        "{err}"
    );
}

#[test]
fn check_config_rejects_wrong_types_naming_the_path() {
    let dir = TempDir::new("cli");
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "session:\n  policy:\n    validation:\n      enabled: sometimes\n",
    )
    .unwrap();
    let (code, _, err) = run_cli(
        &["check-config", "--config", file.to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(code, 1);
    assert!(err.contains("session.policy.validation.enabled"), "{err}");
}

#[test]
fn check_config_prints_the_effective_config_from_the_environment_variable() {
    let dir = TempDir::new("cli");
    let file = dir.path().join("ok.yaml");
    std::fs::write(
        &file,
        "server:\n  name: id.example.org\n  public_url: https://id.example.org/\n",
    )
    .unwrap();
    let out = std::process::Command::new(crate::support::binary())
        .arg("check-config")
        .env("OXISD_CONFIG", &file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("name: id.example.org"), "{text}");
    assert!(
        text.contains("publicUrl: https://id.example.org\n"),
        "{text}"
    );
    assert!(text.contains("sendWarning: true"), "{text}");
}

#[test]
fn check_config_reports_a_missing_file() {
    let dir = TempDir::new("cli");
    let (code, _, err) = run_cli(&["check-config", "--config", "nope.yaml"], dir.path());
    assert_eq!(code, 1);
    assert!(err.contains("nope.yaml"), "{err}");
}

#[test]
fn serve_refuses_an_invalid_config_with_a_clear_message() {
    let dir = TempDir::new("cli");
    let file = dir.path().join("bad.yaml");
    std::fs::write(&file, "server:\n  publicUrl: ftp://nope\n").unwrap();
    let (code, _, err) = run_cli(&["serve", "--config", file.to_str().unwrap()], dir.path());
    assert_eq!(code, 1);
    assert!(err.contains("server.publicUrl"), "{err}");
}

/// With no config at all the server starts on its embedded defaults in the working directory.
/// This is the only test on the fixed default port 8090.
#[test]
// unsafe: kill(2) through libc, to send SIGINT (std only has SIGKILL).
#[allow(unsafe_code)]
fn serve_without_config_uses_the_embedded_defaults() {
    let dir = TempDir::new("defaults");
    let mut child = std::process::Command::new(crate::support::binary())
        .current_dir(dir.path())
        .env_remove("OXISD_CONFIG")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) {
        let done = line.contains("listening on");
        lines.push(line);
        if done {
            break;
        }
    }
    let all = lines.join("\n");
    assert!(
        all.contains("listening on http://127.0.0.1:8090 as 'localhost'"),
        "{all}"
    );
    assert!(all.contains("data directory: ./oxisd-data"), "{all}");
    assert!(all.contains("embedded defaults"), "{all}");
    assert!(
        all.contains("generated a new signing key ed25519:0"),
        "{all}"
    );
    let r = http(
        "127.0.0.1:8090".parse().unwrap(),
        "GET",
        "/_matrix/identity/v2",
        &[],
        b"",
    );
    assert_eq!((r.status, r.json()), (200, json!({})));
    assert!(dir.path().join("oxisd-data/signing.key").exists());
    assert!(dir.path().join("oxisd-data/db").is_dir());
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert!(child.wait().unwrap().success());
}

#[test]
fn issue_19_the_default_data_directory_is_next_to_the_config_file() {
    let dir = TempDir::new("cli-datadir");
    let etc = dir.path().join("etc");
    let cwd = dir.path().join("cwd");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::create_dir_all(&cwd).unwrap();
    let file = etc.join("config.yaml");
    std::fs::write(&file, "server:\n  name: id.example.org\n").unwrap();
    let (code, out, err) = run_cli(&["check-config", "--config", file.to_str().unwrap()], &cwd);
    assert_eq!(code, 0, "{err}");
    let expected = etc.join("oxisd-data");
    assert!(
        out.contains(&format!("path: {}", expected.display())),
        "{out}"
    );
    // A store left where earlier versions put it (the working directory) is not silently
    // replaced by an empty one next to the file.
    std::fs::create_dir_all(cwd.join("oxisd-data").join("db")).unwrap();
    let (code, _, err) = run_cli(&["check-config", "--config", file.to_str().unwrap()], &cwd);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("storage.path is not set") && err.contains("set storage.path"),
        "{err}"
    );
    let (code, _, err) = run_cli(&["serve", "--config", file.to_str().unwrap()], &cwd);
    assert_eq!(code, 1, "{err}");
    assert!(!expected.exists(), "serve created {}", expected.display());
}

#[test]
fn issue_19_check_config_loads_what_serve_loads_and_serve_writes_nothing_before() {
    let dir = TempDir::new("cli-preflight");
    let data = dir.path().join("data");
    let cases = [
        (
            "tls",
            format!(
                "storage:\n  path: {}\nserver:\n  tls:\n    enabled: true\n    port: 0\n    certificate: {}\n    privateKey: {}\n",
                data.display(),
                dir.path().join("missing-cert.pem").display(),
                dir.path().join("missing-key.pem").display()
            ),
            "server.tls",
        ),
        (
            "template",
            format!(
                "storage:\n  path: {}\nthreepid:\n  medium:\n    email:\n      generators:\n        template:\n          session:\n            validation: {}\n",
                data.display(),
                dir.path().join("missing.eml").display()
            ),
            "threepid.medium.email.generators.template.session.validation",
        ),
        (
            "logo",
            format!(
                "storage:\n  path: {}\nview:\n  brand:\n    logo: {}\n",
                data.display(),
                dir.path().join("missing.svg").display()
            ),
            "view.brand.logo",
        ),
    ];
    for (name, yaml, key) in cases {
        let file = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&file, yaml).unwrap();
        let (code, _, err) = run_cli(
            &["check-config", "--config", file.to_str().unwrap()],
            dir.path(),
        );
        assert_eq!(code, 1, "{name}: {err}");
        assert!(err.contains(key), "{name}: {err}");
        let (code, _, err) = run_cli(&["serve", "--config", file.to_str().unwrap()], dir.path());
        assert_eq!(code, 1, "{name}: {err}");
        assert!(err.contains(key), "{name}: {err}");
        assert!(!data.exists(), "{name}: serve created {}", data.display());
    }
}

#[test]
fn issue_19_config_errors_name_the_key_once_in_words() {
    let dir = TempDir::new("cli-wording");
    let file = dir.path().join("bad.yaml");
    std::fs::write(&file, "server:\n  name: id.example.org\n  port: eighty\n").unwrap();
    let (code, _, err) = run_cli(
        &["check-config", "--config", file.to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.matches("server.port").count(), 1, "{err}");
    assert!(
        err.contains("server.port: expected a number from 0 to 65535, found the text \"eighty\" (line 3, column 9)"),
        "{err}"
    );
    assert!(!err.contains("u16"), "{err}");
}

#[test]
fn issue_19_health_answers_for_the_running_server() {
    let server = crate::support::TestServer::start();
    let dir = TempDir::new("cli-health");
    let file = dir.path().join("health.yaml");
    let write = |port: u16| {
        std::fs::write(
            &file,
            format!(
                "server:\n  hostname: 127.0.0.1\n  port: {port}\nstorage:\n  path: {}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap()
    };
    write(server.addr.port());
    let (code, _, err) = run_cli(&["health", "--config", file.to_str().unwrap()], dir.path());
    assert_eq!(code, 0, "{err}");
    drop(server);
    // A listener that answers 503 (as an unhealthy server would): exit 1, with the answer.
    let unhealthy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    write(unhealthy.local_addr().unwrap().port());
    let answering = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut conn, _) = unhealthy.accept().unwrap();
        let mut request = [0u8; 1024];
        let _ = conn.read(&mut request);
        let body = r#"{"status":"failing"}"#;
        let _ = write!(
            conn,
            "HTTP/1.1 503 Service Unavailable\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
    });
    let (code, _, err) = run_cli(&["health", "--config", file.to_str().unwrap()], dir.path());
    answering.join().unwrap();
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("/health answered 503") && err.contains("failing"),
        "{err}"
    );
}

/// The two ways of building the image (issue 19) give the same image: the lines of the final
/// stage other than the COPYs (user, environment, volume, port, health check, entry point).
#[test]
fn issue_19_both_containerfiles_describe_the_same_image() {
    let final_stage = |path: &str| -> Vec<String> {
        let text =
            std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let start = text
            .rfind("\nFROM scratch")
            .expect("a final stage FROM scratch");
        text[start..]
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with("COPY"))
            .map(String::from)
            .collect()
    };
    let built = final_stage("Containerfile");
    assert!(
        built
            .iter()
            .any(|l| l.starts_with("HEALTHCHECK") && l.contains("health"))
    );
    assert!(built.iter().any(|l| l == "USER 65532:65532"));
    assert_eq!(
        built,
        final_stage("contrib/container/Containerfile.prebuilt")
    );
}
