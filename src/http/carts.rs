//! The carts routes.

use serde::Serialize;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use super::error::ApiError;
use super::extract::{path_id, path_ids, raw_query};
use super::reply::{created, json};
use super::{Routed, State, answer, with_state};
use crate::domain::Id;
use crate::store::Store;

/// Every `/cart` route.
pub fn routes<S: Store>(state: State<S>) -> BoxedFilter<(Routed,)> {
    let state = with_state(state);
    // POST /cart -> 201 {"id"}; a body, if any, is not read
    let create = warp::path!("cart")
        .and(warp::post())
        .and(state.clone())
        .then(create)
        .map(answer("/cart"));
    // GET /cart?offset=..&limit=..&min_price=..&max_price=..&min_quantity=..&max_quantity=..
    let list = warp::path!("cart")
        .and(warp::get())
        .and(raw_query())
        .and(state.clone())
        .then(list)
        .map(answer("/cart"));
    // GET /cart/{id}
    let get = warp::path!("cart" / String)
        .and(warp::get())
        .and(state.clone())
        .then(get)
        .map(answer("/cart/{id}"));
    // POST /cart/{cart_id}/add/{item_id}
    let add = warp::path!("cart" / String / "add" / String)
        .and(warp::post())
        .and(state)
        .then(add)
        .map(answer("/cart/{cart_id}/add/{item_id}"));
    create
        .or(list)
        .unify()
        .or(get)
        .unify()
        .or(add)
        .unify()
        .boxed()
}

#[derive(Serialize)]
struct NewCart {
    id: Id,
}

async fn create<S: Store>(state: State<S>) -> Result<Response, ApiError> {
    let id = state.store.create_cart().await?;
    Ok(created(format!("/cart/{id}"), &NewCart { id }))
}

async fn list<S: Store>(query: String, state: State<S>) -> Result<Response, ApiError> {
    let filter = super::query::cart_filter(&query)?;
    let carts = state.store.carts(filter).await?;
    Ok(json(StatusCode::OK, &carts))
}

async fn get<S: Store>(id: String, state: State<S>) -> Result<Response, ApiError> {
    let [id] = path_ids([path_id(&id, "id", "Cart")], Vec::new())?;
    let cart = state.store.cart(id).await?;
    Ok(json(StatusCode::OK, &cart))
}

async fn add<S: Store>(cart: String, item: String, state: State<S>) -> Result<Response, ApiError> {
    let ids = [
        path_id(&cart, "cart_id", "Cart"),
        path_id(&item, "item_id", "Item"),
    ];
    let [cart, item] = path_ids(ids, Vec::new())?;
    let cart = state.store.add_to_cart(cart, item).await?;
    Ok(json(StatusCode::OK, &cart))
}
