//! A real OpenLDAP slapd for the LDAP tests: free loopback ports, a temporary directory with a
//! generated slapd.conf and an mdb database seeded with slapadd, TLS with the test CA of
//! tests/fixtures/ldap (StartTLS on `url`, and `ldaps_url`). Skipped (None) when slapd is not
//! installed, unless the CI variable is set. Self-contained (only std), so it can also be
//! included with `#[path]`.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The suffix of the test directory.
pub const BASE: &str = "dc=example,dc=org";
/// The first base DN of users.
pub const PEOPLE: &str = "ou=people,dc=example,dc=org";
/// The second base DN of users.
pub const CONTRACTORS: &str = "ou=contractors,dc=example,dc=org";
/// The service account: reads everything, paged searches unlimited, unpaged ones limited to 3
/// entries (sizeLimitExceeded beyond).
pub const SERVICE_DN: &str = "cn=oxisd,ou=services,dc=example,dc=org";
/// The service account's password.
pub const SERVICE_PASSWORD: &str = "service-secret";
/// The rootdn (all rights; what add/modify/delete use).
pub const ADMIN_DN: &str = "cn=admin,dc=example,dc=org";
/// The rootdn's password.
pub const ADMIN_PASSWORD: &str = "admin-secret";
/// The slapd binary.
pub const SLAPD: &str = "/usr/sbin/slapd";

/// The entries every directory has: BASE, PEOPLE, CONTRACTORS, ou=services and the service
/// account.
pub const BASE_LDIF: &str = "\
dn: dc=example,dc=org
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: ou=people,dc=example,dc=org
objectClass: organizationalUnit
ou: people

dn: ou=contractors,dc=example,dc=org
objectClass: organizationalUnit
ou: contractors

dn: ou=services,dc=example,dc=org
objectClass: organizationalUnit
ou: services

dn: cn=oxisd,ou=services,dc=example,dc=org
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: oxisd
userPassword: service-secret
";

/// The users of the default seed ([`Slapd::start`]), added under [`BASE_LDIF`]: alice (two
/// mail values, a telephoneNumber) and bob (a national mobile number, region GB) in PEOPLE;
/// dave in PEOPLE, employeeType "disabled"; carol in CONTRACTORS. All inetOrgPerson with uid,
/// cn, sn and userPassword "<uid>-password". Only users: the base entries and the service
/// account come from [`BASE_LDIF`], which `start_with` always adds.
pub const SEED_LDIF: &str = "\
dn: uid=alice,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: alice
cn: Alice Liddell
sn: Liddell
displayName: Alice Liddell
mail: alice@example.org
mail: Alice.Work@Example.ORG
telephoneNumber: +44 7700 900123
userPassword: alice-password

dn: uid=bob,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: bob
cn: Bob Builder
sn: Builder
displayName: Bob Builder
mail: bob@example.org
mobile: 07700 900456
userPassword: bob-password

dn: uid=dave,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: dave
cn: Dave Disabled
sn: Disabled
mail: dave@example.org
employeeType: disabled
userPassword: dave-password

dn: uid=carol,ou=contractors,dc=example,dc=org
objectClass: inetOrgPerson
uid: carol
cn: Carol Contractor
sn: Contractor
displayName: Carol Contractor
mail: carol@contractors.example.org
userPassword: carol-password
";

/// A user filter that leaves out the disabled one.
pub const USER_FILTER: &str = "(&(objectClass=inetOrgPerson)(!(employeeType=disabled)))";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A running slapd; killed, and its directory removed, on drop.
pub struct Slapd {
    /// `ldap://127.0.0.1:PORT` (StartTLS offered).
    pub url: String,
    /// `ldaps://127.0.0.1:PORT2`.
    pub ldaps_url: String,
    /// The PEM test CA that signed slapd's certificate (for localhost and 127.0.0.1).
    pub ca_file: PathBuf,
    dir: PathBuf,
    listen: String,
    port: u16,
    child: Option<Child>,
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ldap")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(dir: &Path) -> String {
    let fixtures = fixtures();
    let d = dir.display();
    let f = fixtures.display();
    format!(
        "include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
pidfile {d}/slapd.pid
argsfile {d}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
TLSCACertificateFile {f}/ca.pem
TLSCertificateFile {f}/server.pem
TLSCertificateKeyFile {f}/server-key.pem

database mdb
suffix \"{BASE}\"
rootdn \"{ADMIN_DN}\"
rootpw {ADMIN_PASSWORD}
directory {d}/data
maxsize 1073741824
limits dn.exact=\"{SERVICE_DN}\" size.soft=3 size.hard=3 size.pr=1000 size.prtotal=unlimited
access to *
  by dn.exact=\"{SERVICE_DN}\" read
  by anonymous auth
  by * none
"
    )
}

impl Slapd {
    /// Starts slapd with [`BASE_LDIF`] and [`SEED_LDIF`].
    pub fn start() -> Option<Slapd> {
        Self::start_with(SEED_LDIF)
    }

    /// Starts slapd with [`BASE_LDIF`] and `users_ldif` (entries under the base entries).
    /// None (after saying why) when slapd is not installed and CI is not set.
    pub fn start_with(users_ldif: &str) -> Option<Slapd> {
        if !Path::new(SLAPD).exists() {
            if std::env::var_os("CI").is_some() {
                panic!("slapd is not installed (apt-get install slapd ldap-utils), and CI is set");
            }
            eprintln!("skipped: slapd is not installed (apt-get install slapd ldap-utils)");
            return None;
        }
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("oxisd-test-slapd-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(dir.join("slapd.conf"), config(&dir)).unwrap();
        std::fs::write(dir.join("seed.ldif"), format!("{BASE_LDIF}\n{users_ldif}")).unwrap();
        let out = Command::new("/usr/sbin/slapadd")
            .arg("-q")
            .arg("-f")
            .arg(dir.join("slapd.conf"))
            .arg("-l")
            .arg(dir.join("seed.ldif"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "slapadd failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut last_error = String::new();
        for _ in 0..5 {
            let (port, port2) = (free_port(), free_port());
            if port == port2 {
                continue;
            }
            let mut slapd = Slapd {
                url: format!("ldap://127.0.0.1:{port}"),
                ldaps_url: format!("ldaps://127.0.0.1:{port2}"),
                ca_file: fixtures().join("ca.pem"),
                dir: dir.clone(),
                listen: format!("ldap://127.0.0.1:{port}/ ldaps://127.0.0.1:{port2}/"),
                port,
                child: None,
            };
            match slapd.spawn() {
                Ok(()) => return Some(slapd),
                Err(error) => {
                    // Probably a port taken in between: try others. Keep the directory.
                    last_error = error;
                    slapd.dir = PathBuf::new();
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        panic!("slapd did not start: {last_error}");
    }

    /// Spawns slapd on this instance's ports and waits until it answers a bind as the rootdn.
    fn spawn(&mut self) -> Result<(), String> {
        let log = std::fs::File::create(self.dir.join("slapd.log")).unwrap();
        let mut child = Command::new(SLAPD)
            .arg("-f")
            .arg(self.dir.join("slapd.conf"))
            .arg("-h")
            .arg(&self.listen)
            // A debug level keeps slapd in the foreground (a child we can kill); 0 logs nothing.
            .args(["-d", "0"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run {SLAPD}: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(self.dir.join("slapd.log")).unwrap_or_default();
                return Err(format!("slapd exited ({status}): {log}"));
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                let ok = Command::new("ldapwhoami")
                    .args([
                        "-x",
                        "-o",
                        "nettimeout=2",
                        "-H",
                        &self.url,
                        "-D",
                        ADMIN_DN,
                        "-w",
                    ])
                    .arg(ADMIN_PASSWORD)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false);
                if ok {
                    self.child = Some(child);
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err("slapd did not answer within 20 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn tool(&self, tool: &str, args: &[&str], input: &str) {
        let mut child = Command::new(tool)
            .args(["-x", "-H", &self.url, "-D", ADMIN_DN, "-w", ADMIN_PASSWORD])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{tool} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Adds entries (ldapadd as the rootdn); panics with ldapadd's stderr on failure.
    pub fn add(&self, ldif: &str) {
        self.tool("ldapadd", &[], ldif);
    }

    /// Modifies entries (ldapmodify as the rootdn); panics with its stderr on failure.
    pub fn modify(&self, ldif: &str) {
        self.tool("ldapmodify", &[], ldif);
    }

    /// Deletes one entry (ldapdelete as the rootdn); panics with its stderr on failure.
    pub fn delete(&self, dn: &str) {
        self.tool("ldapdelete", &[dn], "");
    }

    /// Kills slapd (connections drop, the ports refuse); the data stays for [`Slapd::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops slapd if it runs, then starts it again on the same ports and data.
    pub fn restart(&mut self) {
        self.stop();
        let mut last = String::new();
        // The ports were just released; retry briefly in case they are not free yet.
        for _ in 0..20 {
            match self.spawn() {
                Ok(()) => return,
                Err(error) => last = error,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("slapd did not restart: {last}");
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
