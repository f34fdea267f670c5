//! `pinning-check <statement log>`: the pinning check of the test command (tests/run.sh). Reads
//! the test cluster's statement log after the whole suite and the contract fuzz have run, and
//! fails when a session of the application (`application_name` keystone) sent anything that
//! would pin an RDS Proxy session, or when the log holds no statement of it at all (logging
//! off: the check would prove nothing).

use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: pinning-check <postgresql statement log>");
        return ExitCode::from(2);
    };
    let log = match std::fs::read(&path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => {
            eprintln!("pinning check: cannot read {path}: {e}");
            return ExitCode::from(2);
        }
    };
    let application = keystone_store::APPLICATION_NAME;
    let scan = keystone_tests::pinning::scan(&log, application);
    if scan.statements == 0 {
        eprintln!("pinning check: no statement of application {application:?} in {path}");
        return ExitCode::FAILURE;
    }
    for offence in &scan.offences {
        eprintln!("pinning check: {offence}");
    }
    println!(
        "pinning check: {} statements of application {application:?}, {} that would pin an RDS Proxy session",
        scan.statements,
        scan.offences.len()
    );
    if scan.offences.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
