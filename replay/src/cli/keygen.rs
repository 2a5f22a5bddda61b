//! `highwater keygen`: a new relay key pair — printed, or with the secret written to a
//! file only its owner can read (mode 0600) for `highwater relay --secret-key-file`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use nostr::prelude::{Keys, ToBech32};

use super::relay::write_key_file;

#[derive(Debug, Args)]
pub(crate) struct KeygenArgs {
    /// Write the secret key (nsec) to this new file, mode 0600, and print only the
    /// public key; an existing file is never overwritten.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

pub(crate) fn run(args: &KeygenArgs) -> Result<ExitCode> {
    let keys = Keys::generate();
    let public = keys.public_key();
    let npub = public.to_bech32().context("encoding the public key")?;
    if let Some(path) = &args.output {
        write_key_file(path, &keys)?;
        println!("secret key written to {} (mode 0600)", path.display());
    } else {
        let secret = keys.secret_key();
        let nsec = secret.to_bech32().context("encoding the secret key")?;
        println!("secret  {nsec}");
        println!("secret  {}", secret.to_secret_hex());
    }
    println!("public  {npub}");
    println!("public  {}", public.to_hex());
    Ok(ExitCode::SUCCESS)
}
