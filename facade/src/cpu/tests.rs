use super::*;

#[tokio::test]
async fn jobs_beyond_the_pool_or_the_budget_are_refused_and_counted() {
    let cpu = Arc::new(Cpu::new(1, Duration::from_millis(200)));
    assert_eq!(cpu.run(|| 2 + 2).await, Ok(4));
    // One job holds the only permit past the budget; the next cannot start.
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = {
        let cpu = Arc::clone(&cpu);
        tokio::spawn(async move {
            cpu.run(move || {
                let _ = release_rx.recv();
            })
            .await
        })
    };
    assert_eq!(holder.await.unwrap(), Err(Overrun::TooSlow(cpu.budget)));
    assert_eq!(cpu.run(|| 1).await, Err(Overrun::Busy(cpu.budget)));
    assert_eq!(cpu.counts(), (1, 1));
    // Once the overrunning job ends, its permit is free again.
    release_tx.send(()).unwrap();
    let started = tokio::time::Instant::now();
    loop {
        if cpu.run(|| 1).await == Ok(1) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the permit never came back"
        );
    }
}
