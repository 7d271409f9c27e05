//! `cohort user`: the billing staff who sign in to the console, each with a role and,
//! if they should see only some groups, those groups.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use cohort_server::staff::{check_password, hash_password};
use cohort_store::{Role, StaffMember};

use crate::ops::{StoreArgs, now, print_json, stack, time};
use crate::serve::RoleArg;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a member of staff who signs in to the console with a password read from
    /// standard input
    Create {
        name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// The only groups they see (and only those groups' customers and history),
        /// by id, comma-separated; every group if not given
        #[arg(long, value_delimiter = ',', value_name = "GROUPS")]
        groups: Option<Vec<String>>,
        /// Read the password from standard input (the first line); it is never taken
        /// as an argument, which other users of the machine could read
        #[arg(long)]
        password_stdin: bool,
    },
    /// Give a member a new password (from standard input); their sessions end and a
    /// lock from failed sign-ins is lifted
    Password {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// List the members of staff
    List,
    /// Remove a member of staff; their sessions end, the history keeps their name
    Delete { name: String },
}

/// The password on standard input: its first line, without the line's end.
fn read_password(given: bool) -> anyhow::Result<String> {
    if !given {
        bail!("give the password on standard input with --password-stdin");
    }
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("cannot read the password from standard input")?;
    let line = text.lines().next().unwrap_or_default().to_string();
    check_password(&line).map_err(|why| anyhow::anyhow!(why))?;
    Ok(line)
}

pub fn user(
    cmd: UserCommand,
    store: &StoreArgs,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let stack = stack(store, cache_dir)?;
    let access = stack.access.as_ref();
    match cmd {
        UserCommand::Create {
            name,
            role,
            groups,
            password_stdin,
        } => {
            let name = name.trim().to_string();
            cohort_model::check_label(&name, 64)
                .map_err(|why| anyhow::anyhow!("a staff member's name {why}"))?;
            if let Some(groups) = &groups {
                stack.engine.check_scope(groups)?;
            }
            let password = read_password(password_stdin)?;
            let hash = hash_password(&password).map_err(|e| anyhow::anyhow!(e))?;
            let at = now();
            let member = StaffMember {
                name: name.clone(),
                role: role.into(),
                groups,
                created_at: at,
                password_changed_at: at,
            };
            if !access.create_staff(&member, &hash)? {
                bail!("there is already a staff member `{name}`");
            }
            if store.json {
                print_json(&member)?;
            } else {
                println!("staff member `{name}` ({}) created", member.role.as_str());
            }
        }
        UserCommand::Password {
            name,
            password_stdin,
        } => {
            let password = read_password(password_stdin)?;
            let hash = hash_password(&password).map_err(|e| anyhow::anyhow!(e))?;
            if !access.set_staff_password(&name, &hash, now())? {
                bail!("no staff member `{name}` (see `cohort user list`)");
            }
            println!("new password for `{name}`; their sessions have ended");
        }
        UserCommand::List => {
            let staff = access.staff()?;
            if store.json {
                print_json(&staff)?;
            } else {
                for m in staff {
                    println!(
                        "{:<24} {:<10} {:<30} created {}",
                        m.name,
                        m.role.as_str(),
                        m.groups
                            .as_ref()
                            .map_or("every group".to_string(), |g| g.join(",")),
                        time(m.created_at)
                    );
                }
            }
        }
        UserCommand::Delete { name } => {
            if !access.delete_staff(&name)? {
                bail!("no staff member `{name}` (see `cohort user list`)");
            }
            println!("removed staff member `{name}`");
        }
    }
    Ok(ExitCode::SUCCESS)
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Role {
        match role {
            RoleArg::ReadOnly => Role::ReadOnly,
            RoleArg::Operator => Role::Operator,
            RoleArg::Admin => Role::Admin,
        }
    }
}
