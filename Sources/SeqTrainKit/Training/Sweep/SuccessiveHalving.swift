import Foundation

/// Synchronous successive halving (the rung rule of Hyperband and ASHA): every trial trains to
/// the first rung's budget; the best 1/η by the monitored metric continue to the next budget; the
/// last rung trains the survivors to `training.max_steps`. Pure functions, tested on planted metrics.
public enum SuccessiveHalving {
    /// The steps at which the trials are ranked before the end (ascending, each < maxSteps), or none.
    /// Budgets grow by η up to maxSteps, one halving per factor η in the number of trials; each is
    /// a multiple of `evalEvery`, so a rung ends at a validation the run makes anyway.
    /// - maxSteps: `training.max_steps` (0: the run's length is set by epochs: no rungs).
    /// - evalEvery: `training.eval_every` (0: validation only at the end: no rungs).
    public static func rungSteps(maxSteps: Int, evalEvery: Int, trials: Int, eta: Int) -> [Int] {
        guard maxSteps > 0, evalEvery > 0, trials > 1, eta > 1 else { return [] }
        var halvings = 0, remaining = trials
        while remaining / eta >= 1 {
            remaining /= eta
            halvings += 1
        }
        var steps: [Int] = []
        for rung in 0..<halvings {
            var budget = maxSteps
            for _ in 0..<(halvings - rung) { budget /= eta }
            budget = budget / evalEvery * evalEvery
            if budget >= evalEvery && budget < maxSteps && !steps.contains(budget) { steps.append(budget) }
        }
        return steps
    }

    /// How many of `count` ranked trials continue: the best 1/η, at least one.
    public static func keptCount(of count: Int, eta: Int) -> Int { count > 0 ? max(1, count / max(eta, 2)) : 0 }

    /// The trials that continue after a rung, best first. `results`: each trial's monitored figure
    /// at the rung (nil or not finite: it failed or never validated, and never continues). Ties go
    /// to the lower trial number, so the decision is the same on every run.
    public static func survivors(_ results: [(trial: Int, value: Double?)], eta: Int,
                                 mode: EarlyStoppingSettings.Mode) -> [Int] {
        let ranked = results.compactMap { result -> (trial: Int, value: Double)? in
            guard let value = result.value, value.isFinite else { return nil }
            return (result.trial, value)
        }.sorted { a, b in
            if a.value != b.value { return mode == .min ? a.value < b.value : a.value > b.value }
            return a.trial < b.trial
        }
        return ranked.prefix(keptCount(of: results.count, eta: eta)).map(\.trial)
    }

    /// The best of `values` in `mode`, ignoring what is not finite; nil when none is.
    public static func best(_ values: [Double], mode: EarlyStoppingSettings.Mode) -> Double? {
        let finite = values.filter(\.isFinite)
        return mode == .min ? finite.min() : finite.max()
    }
}
