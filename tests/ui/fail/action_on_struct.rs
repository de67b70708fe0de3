use threadline::audited_action;

#[audited_action("post_created")]
struct CreatePost {
    title: String,
}

fn main() {}
