//! Scratch: scan an image and print the report as JSON.
fn main() {
    let arg = std::env::args().nth(1).expect("image");
    let input = scanner::Input::parse(&arg).unwrap();
    match scanner::scan(&input, &scanner::ScanOptions::default()) {
        Ok(r) => println!("{}", serde_json::to_string_pretty(&r).unwrap()),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2)
        }
    }
}
