//! The coordinator's report: the table it prints and the CSV it writes
//! (`scripts/plot_c10k.py` plots the CSV).

use crate::common::table::{Csv, Table};
use crate::protocol::ACTIVE;
use crate::run::{Config, Row};
use std::io;
use std::iter;
use std::path::Path;

pub fn print_table(rows: &[Row], cfg: &Config) {
    let groups = Table::new().left(16).right(6).right(8).right(28).right(35);
    let table = Table::new()
        .left(16)
        .right(6)
        .right(8)
        .right(9)
        .right(11)
        .right(11)
        .right(21)
        .right(13);
    println!();
    println!(
        "{}",
        groups.line(&[
            &"",
            &"",
            &"",
            &"----------- per select -----------",
            &"----------- per message -----------"
        ])
    );
    println!(
        "{}",
        table.line(&[
            &"backend",
            &"N",
            &"msgs/s",
            &"messages",
            &"CPU µs",
            &"wall µs",
            &"CPU µs (user+sys)",
            &"syscalls"
        ])
    );
    for row in rows {
        let start = table.line(&[&row.backend, &row.n]);
        if let Some((reached, _)) = &row.capped {
            println!("{start} refused: fd 1024 is past FD_SETSIZE (after {reached} connections)");
            continue;
        }
        let Some(t) = row.timing() else {
            println!("{start}");
            continue;
        };
        let cpu = format!(
            "{:.1} ({:.1}+{:.1})",
            t.cpu_us_per_msg(),
            t.user_us_per_msg(),
            t.sys_us_per_msg()
        );
        let calls = row
            .syscalls_per_msg()
            .map_or("-".to_string(), |c| format!("{c:.2}"));
        let line = table.line(&[
            &row.backend,
            &row.n,
            &format!("{:.0}", t.per_sec()),
            &format!("{:.2}", t.msgs_per_select()),
            &format!("{:.1}", t.cpu_us_per_select()),
            &format!("{:.1}", t.wall_us_per_select()),
            &cpu,
            &calls,
        ]);
        println!("{line}");
    }
    println!();
    println!("peak connections registered (the largest N run):");
    for backend in &cfg.backends {
        let runs = || rows.iter().filter(|r| r.backend == *backend);
        match runs().find_map(|r| r.capped.as_ref()) {
            Some((reached, err)) => println!("  {backend:<16} {reached:>6}  ({err})"),
            None => {
                let peak = runs().filter(|r| r.timing().is_some()).map(|r| r.n).max();
                println!("  {backend:<16} {:>6}", peak.unwrap_or(0));
            }
        }
    }
    println!();
    match &cfg.no_strace {
        Some(why) => println!("system calls were not measured: {why}"),
        None => {
            println!(
                "system calls (strace -c -f -p SERVER, steady state only), per message as \
                 traced;\nstrace slows the server, so it batches more messages per select \
                 than untraced:\n\"syscalls\" above is the echo's calls + the calls per \
                 select / the untraced batch"
            );
            for row in rows {
                if let Some(s) = &row.syscalls {
                    println!(
                        "  {:<16} {:>6}: {:.2} = {}  ({} msgs, {:.1} per select; \
                         {:.2} calls per select + {:.2} per message)",
                        row.backend,
                        row.n,
                        s.per_msg(),
                        s.breakdown(),
                        s.messages,
                        s.msgs_per_select(),
                        s.per_select(),
                        s.io_per_msg(),
                    );
                } else if let (Some(why), None) = (&row.no_syscalls, &row.capped) {
                    println!("  {:<16} {:>6}: not measured: {why}", row.backend, row.n);
                }
            }
        }
    }
}

pub fn write_csv(rows: &[Row], path: &Path) -> io::Result<()> {
    let mut csv = Csv::new(&[
        "backend",
        "n",
        "active",
        "setup_s",
        "messages",
        "seconds",
        "msgs_per_sec",
        "selects",
        "msgs_per_select",
        "cpu_us_per_select",
        "cpu_us_per_select_min",
        "cpu_us_per_select_max",
        "wall_us_per_select",
        "cpu_us_per_msg",
        "user_us_per_msg",
        "sys_us_per_msg",
        "syscalls_per_msg",
        "strace_syscalls_per_msg",
        "strace_messages",
        "strace_msgs_per_select",
        "syscalls_per_select",
        "syscall_breakdown",
        "capped_at",
    ]);
    for row in rows {
        let mut cells = vec![
            row.backend.to_string(),
            row.n.to_string(),
            ACTIVE.min(row.n).to_string(),
        ];
        let blank = |cells: &mut Vec<String>, k| cells.extend(iter::repeat_n(String::new(), k));
        match row.timing() {
            Some(t) => cells.extend([
                format!("{:.3}", row.setup.as_secs_f64()),
                t.messages.to_string(),
                format!("{:.3}", t.wall.as_secs_f64()),
                format!("{:.0}", t.per_sec()),
                t.selects.to_string(),
                format!("{:.3}", t.msgs_per_select()),
                format!("{:.2}", t.cpu_us_per_select()),
                format!("{:.2}", row.phases[0].cpu_us_per_select()),
                format!(
                    "{:.2}",
                    row.phases[row.phases.len() - 1].cpu_us_per_select()
                ),
                format!("{:.2}", t.wall_us_per_select()),
                format!("{:.3}", t.cpu_us_per_msg()),
                format!("{:.3}", t.user_us_per_msg()),
                format!("{:.3}", t.sys_us_per_msg()),
            ]),
            None => blank(&mut cells, 13),
        }
        match (&row.syscalls, row.syscalls_per_msg()) {
            (Some(s), Some(per_msg)) => cells.extend([
                format!("{per_msg:.3}"),
                format!("{:.3}", s.per_msg()),
                s.messages.to_string(),
                format!("{:.3}", s.msgs_per_select()),
                format!("{:.3}", s.per_select()),
                s.breakdown(),
            ]),
            _ => blank(&mut cells, 6),
        }
        cells.push(
            row.capped
                .as_ref()
                .map(|c| c.0.to_string())
                .unwrap_or_default(),
        );
        csv.row(&cells);
    }
    csv.write(path)
}
