import Foundation

/// The timestamps of a series' time column (data.time_column): integers, ISO months (1949-01), dates
/// (1949-01-31) or date-times (2024-03-01T13:00[:00], or with a space). They must increase; when the
/// step between them is regular (a number of months, days or seconds), `future(k)` names the k-th step
/// after the last one in the same style, so forecasts carry their dates.
public struct SeriesClock: Equatable {
    enum Style: Equatable {
        case integer
        case month(day: Int?)                 // 1949-01, or a date on the same day of every month
        case day
        case dateTime(separator: Character, seconds: Bool)
    }

    var style: Style
    /// The last timestamp: the integer, months since year 0, days since 1970-01-01, or seconds since then.
    var last: Int64
    /// The regular step in those units; nil when the steps differ.
    var step: Int64?

    public init(_ stamps: [String], path: String) throws {
        guard let first = stamps.first else { throw SeqTrainError("data.time_column: \(path) has no rows") }
        let style = try Self.style(of: first, path: path)
        var values: [Int64] = []
        values.reserveCapacity(stamps.count)
        for (t, stamp) in stamps.enumerated() {
            guard let value = Self.parse(stamp, style: style) else {
                throw SeqTrainError("data.time_column: \(path), step \(t): \"\(stamp.prefix(40))\" is not a timestamp "
                    + "like the first one, \"\(first.prefix(40))\"; the column holds one kind: integers, 1949-01, "
                    + "1949-01-31 or 1949-01-31T13:00:00")
            }
            if let previous = values.last, value <= previous {
                throw SeqTrainError("data.time_column: \(path), step \(t): \"\(stamp.prefix(40))\" does not come after "
                    + "\"\(stamps[t - 1].prefix(40))\"; the rows must be in time order, each step once")
            }
            values.append(value)
        }
        var style_ = style
        var units = values
        // Dates on the same day of every month step by months, not by days.
        if style == .day, values.count > 1 {
            let days = stamps.map { $0.split(separator: "-").last.flatMap { Int($0.prefix(2)) } }
            if let day = days[0], days.allSatisfy({ $0 == day }) {
                style_ = .month(day: day)
                units = stamps.compactMap { Self.parse(String($0.prefix(7)), style: .month(day: nil)) }
            }
        }
        self.style = style_
        last = units[units.count - 1]
        // Integer stamps may span all of Int64: a difference that overflows is an irregular step.
        let steps = zip(units.dropFirst(), units).map { a, b -> Int64? in
            let (d, overflow) = a.subtractingReportingOverflow(b)
            return overflow ? nil : d
        }
        step = steps.first.flatMap { s in s.flatMap { s in steps.allSatisfy { $0 == s } ? s : nil } }
    }

    /// The k-th timestamp after the last (k ≥ 1), or nil when the steps are irregular.
    public func future(_ k: Int) -> String? {
        guard let step else { return nil }
        let (offset, overflow) = step.multipliedReportingOverflow(by: Int64(k))
        guard !overflow, case let (value, over) = last.addingReportingOverflow(offset), !over else { return nil }
        switch style {
        case .integer: return String(value)
        case .month(let day):
            let (year, month) = (value / 12, value % 12 + 1)
            let text = String(format: "%04lld-%02lld", year, month)
            guard let day else { return text }
            return text + String(format: "-%02d", min(day, Self.daysIn(month: Int(month), year: year)))
        case .day:
            let (y, m, d) = Self.civil(fromDays: value)
            return String(format: "%04lld-%02lld-%02lld", y, m, d)
        case .dateTime(let separator, let seconds):
            let days = value >= 0 ? value / 86_400 : (value - 86_399) / 86_400
            let rest = value - days * 86_400
            let (y, m, d) = Self.civil(fromDays: days)
            let clock = seconds ? String(format: "%02lld:%02lld:%02lld", rest / 3600, rest / 60 % 60, rest % 60)
                : String(format: "%02lld:%02lld", rest / 3600, rest / 60 % 60)
            return String(format: "%04lld-%02lld-%02lld", y, m, d) + String(separator) + clock
        }
    }

    static func style(of stamp: String, path: String) throws -> Style {
        let s = stamp.trimmingCharacters(in: .whitespaces)
        if Int64(s) != nil { return .integer }
        let parts = s.split(separator: "-", omittingEmptySubsequences: false)
        if parts.count == 2 { return .month(day: nil) }
        if parts.count == 3 && s.count == 10 { return .day }
        if s.count >= 16, let separator = Array(s)[safe: 10], separator == "T" || separator == " " {
            return .dateTime(separator: separator, seconds: s.count >= 19)
        }
        throw SeqTrainError("data.time_column: \(path): \"\(stamp.prefix(40))\" is not a timestamp seqtrain reads: "
            + "integers, ISO months (1949-01), dates (1949-01-31) or date-times (1949-01-31T13:00:00)")
    }

    static func parse(_ stamp: String, style: Style) -> Int64? {
        let s = Array(stamp.trimmingCharacters(in: .whitespaces).utf8)
        func number(_ range: Range<Int>) -> Int64? {
            guard range.upperBound <= s.count, !range.isEmpty,
                  s[range].allSatisfy({ (48...57).contains($0) }) else { return nil }
            return s[range].reduce(Int64(0)) { $0 * 10 + Int64($1 - 48) }
        }
        func date() -> (Int64, Int64, Int64)? {
            guard s.count >= 10, s[4] == 45, s[7] == 45, let y = number(0..<4), let m = number(5..<7),
                  let d = number(8..<10), (1...12).contains(m), d >= 1,
                  d <= Int64(daysIn(month: Int(m), year: y)) else { return nil }
            return (y, m, d)
        }
        switch style {
        case .integer: return Int64(String(decoding: s, as: UTF8.self))
        case .month:
            guard s.count == 7, s[4] == 45, let y = number(0..<4), let m = number(5..<7),
                  (1...12).contains(m) else { return nil }
            return y * 12 + m - 1
        case .day:
            guard s.count == 10, let (y, m, d) = date() else { return nil }
            return days(year: y, month: m, day: d)
        case .dateTime(_, let seconds):
            guard s.count == (seconds ? 19 : 16), let (y, m, d) = date(), s[10] == 84 || s[10] == 32, s[13] == 58,
                  let h = number(11..<13), let minute = number(14..<16), h < 24, minute < 60 else { return nil }
            var second: Int64 = 0
            if seconds {
                guard s[16] == 58, let v = number(17..<19), v < 60 else { return nil }
                second = v
            }
            return days(year: y, month: m, day: d) * 86_400 + h * 3600 + minute * 60 + second
        }
    }

    static func daysIn(month: Int, year: Int64) -> Int {
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        return [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
    static func days(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The date of a day count (civil_from_days).
    static func civil(fromDays z0: Int64) -> (Int64, Int64, Int64) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}

extension Array {
    subscript(safe index: Int) -> Element? { indices.contains(index) ? self[index] : nil }
}
