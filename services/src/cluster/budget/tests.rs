use super::*;

#[test]
fn retries_stay_within_the_ratio() {
    let budget = RetryBudget::new(0.2, 0);
    let mut retries = 0;
    for _ in 0..1000 {
        budget.deposit();
        if budget.try_spend() {
            retries += 1;
        }
    }
    assert!(
        (190..=200).contains(&retries),
        "{retries} retries for 1000 requests"
    );
    let reserved = RetryBudget::new(0.2, 3);
    assert!(reserved.try_spend() && reserved.try_spend() && reserved.try_spend());
    assert!(!reserved.try_spend());
}
