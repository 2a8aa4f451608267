//! What a response that matches the query means: the SRV records of a NOERROR answer, none for
//! NXDOMAIN, an error otherwise. Also [`read_answer`], the parser's whole path from the bytes
//! of a message, for the fuzz targets in `fuzz/` and the property tests.

use super::{
    Question, RCODE_NXDOMAIN, Response, SrvError, SrvRecord, match_response, parse_answers,
};

/// The records of a response whose id and question match the query.
pub(super) fn records(
    response: &Response,
    question: &Question,
) -> Result<Vec<SrvRecord>, SrvError> {
    match response.rcode {
        0 => parse_answers(response, question),
        RCODE_NXDOMAIN => Ok(Vec::new()),
        rcode => Err(SrvError::Server {
            name: question.display.clone(),
            rcode,
        }),
    }
}

/// Reads one message as [`super::SrvResolver::lookup`] does for a query of `name` with id
/// `id`: `Ok(None)` when it does not answer that query (the resolver would ignore it), else
/// the records (unordered) or the error. Not part of the API otherwise.
pub fn read_answer(
    name: &str,
    id: u16,
    message: &[u8],
) -> Result<Option<Vec<SrvRecord>>, SrvError> {
    let question = Question::new(name)?;
    match match_response(message, id, &question) {
        Some(response) => records(&response, &question).map(Some),
        None => Ok(None),
    }
}
