use super::*;

#[test]
fn money_converts_exactly_both_ways() {
    assert_eq!(to_minor_units("19.99", 2).as_deref(), Ok("1999"));
    assert_eq!(to_minor_units("19.9", 2).as_deref(), Ok("1990"));
    assert_eq!(to_minor_units("0.07", 2).as_deref(), Ok("7"));
    assert_eq!(to_minor_units("-3.50", 2).as_deref(), Ok("-350"));
    assert_eq!(to_minor_units("12", 2).as_deref(), Ok("1200"));
    assert_eq!(to_minor_units("1.230", 2).as_deref(), Ok("123"));
    assert_eq!(
        to_minor_units("99999999999999999999.99", 2).as_deref(),
        Ok("9999999999999999999999")
    );
    assert!(to_minor_units("1.005", 2).is_err_and(|e| e.contains("decimal places")));
    for bad in ["", "abc", "1.", ".5", "1e3", "--1", "1.2.3"] {
        assert!(to_minor_units(bad, 2).is_err(), "{bad}");
    }
    assert_eq!(to_decimal("1999", 2).as_deref(), Ok("19.99"));
    assert_eq!(to_decimal("7", 2).as_deref(), Ok("0.07"));
    assert_eq!(to_decimal("-350", 2).as_deref(), Ok("-3.50"));
    assert_eq!(to_decimal("0", 2).as_deref(), Ok("0.00"));
    assert_eq!(to_decimal("-0", 2).as_deref(), Ok("0.00"));
    assert_eq!(to_decimal("5", 0).as_deref(), Ok("5"));
    assert_eq!(to_decimal("-5", 2).as_deref(), Ok("-0.05"));
    assert_eq!(to_decimal("00123456", 3).as_deref(), Ok("123.456"));
    assert_eq!(to_decimal("-000", 0).as_deref(), Ok("0"));
    assert!(to_decimal("19.99", 2).is_err());
}

#[test]
fn keys_change_case() {
    for (k, snake, camel) in [
        ("orderId", "order_id", "orderId"),
        ("order_id", "order_id", "orderId"),
        ("userID", "user_id", "userId"),
        ("HTTPServer", "http_server", "httpServer"),
        ("line2Total", "line2_total", "line2Total"),
        ("Order-Number", "order_number", "orderNumber"),
    ] {
        assert_eq!(recase_key(k, Case::Snake), snake, "{k}");
        assert_eq!(recase_key(k, Case::Camel), camel, "{k}");
    }
    assert_eq!(recase_key("order_id", Case::Pascal), "OrderId");
    assert_eq!(recase_key("order_id", Case::Kebab), "order-id");
}

#[test]
fn dates_convert_between_formats() {
    let conv = |v: &str, f: &str, t: &str| {
        let mut v = Value::parse(v.as_bytes()).unwrap_or(Value::Null);
        let c = Conversion::Date(
            DateFormat::parse(f).unwrap_or(DateFormat::Unix),
            DateFormat::parse(t).unwrap_or(DateFormat::Unix),
        );
        convert(&mut v, &c).map(|_| v.to_json())
    };
    assert_eq!(
        conv("\"31/12/2024\"", "%d/%m/%Y", "rfc3339").as_deref(),
        Ok("\"2024-12-31T00:00:00Z\"")
    );
    assert_eq!(
        conv("\"2024-02-29T10:30:00+02:00\"", "rfc3339", "unix").as_deref(),
        Ok("1709195400")
    );
    assert_eq!(
        conv("1709195400123", "unix-ms", "rfc3339").as_deref(),
        Ok("\"2024-02-29T08:30:00.123Z\"")
    );
    assert_eq!(
        conv("0", "unix", "%Y%m%d %H:%M").as_deref(),
        Ok("\"19700101 00:00\"")
    );
    assert!(conv("\"30/02/2024\"", "%d/%m/%Y", "rfc3339").is_err());
    assert!(conv("\"2024-1-1\"", "%Y-%m-%d", "rfc3339").is_err());
    assert!(conv("99999999999999999", "unix", "rfc3339").is_err());
    assert!(DateFormat::parse("%Q").is_err());
}
