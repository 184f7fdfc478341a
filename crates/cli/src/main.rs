//! `card-member`: runs the card-member service and drives the API.

fn main() {
    eprintln!("card-member: the server is not built yet");
    std::process::exit(2);
}
