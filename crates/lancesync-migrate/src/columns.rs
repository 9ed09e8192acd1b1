//! The original system's columns, read whatever Arrow type a version of it gave them: strings
//! that may be timestamps, counts that may be 64-bit, vectors that may be variable-length lists
//! or another float width. A column that is missing reads as `None`, and the caller decides.

use arrow_array::{
    Array, ArrayRef, Float32Array, Int64Array, RecordBatch, StringArray, cast::AsArray,
};
use arrow_schema::DataType;

use crate::{Error, Result};

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Option<&'a ArrayRef> {
    batch.schema().index_of(name).ok().map(|i| batch.column(i))
}

fn cast_error(name: &str, from: &DataType, e: impl std::fmt::Display) -> Error {
    Error::LegacyColumn {
        column: name.to_string(),
        detail: format!("cannot read type {from}: {e}"),
    }
}

/// Column `name` as optional strings: `None` if the batch has no such column.
pub(crate) fn strings(batch: &RecordBatch, name: &str) -> Result<Option<Vec<Option<String>>>> {
    let Some(array) = column(batch, name) else {
        return Ok(None);
    };
    let cast = arrow_cast::cast(array, &DataType::Utf8)
        .map_err(|e| cast_error(name, array.data_type(), e))?;
    let strings: &StringArray = cast.as_string();
    Ok(Some(
        (0..strings.len())
            .map(|i| (!strings.is_null(i)).then(|| strings.value(i).to_string()))
            .collect(),
    ))
}

/// Column `name` as optional 64-bit integers.
pub(crate) fn integers(batch: &RecordBatch, name: &str) -> Result<Option<Vec<Option<i64>>>> {
    let Some(array) = column(batch, name) else {
        return Ok(None);
    };
    let cast = arrow_cast::cast(array, &DataType::Int64)
        .map_err(|e| cast_error(name, array.data_type(), e))?;
    let ints: &Int64Array = cast.as_primitive();
    Ok(Some(
        (0..ints.len())
            .map(|i| (!ints.is_null(i)).then(|| ints.value(i)))
            .collect(),
    ))
}

/// Column `name` as optional float32 vectors, from a fixed-size or variable list of any float.
pub(crate) fn vectors(batch: &RecordBatch, name: &str) -> Result<Option<Vec<Option<Vec<f32>>>>> {
    let Some(array) = column(batch, name) else {
        return Ok(None);
    };
    let row = |i: usize| -> Result<Option<Vec<f32>>> {
        if array.is_null(i) {
            return Ok(None);
        }
        let values = match array.data_type() {
            DataType::FixedSizeList(..) => array.as_fixed_size_list().value(i),
            DataType::List(_) => array.as_list::<i32>().value(i),
            DataType::LargeList(_) => array.as_list::<i64>().value(i),
            other => return Err(cast_error(name, other, "not a list of numbers")),
        };
        let floats = arrow_cast::cast(&values, &DataType::Float32)
            .map_err(|e| cast_error(name, array.data_type(), e))?;
        let floats: &Float32Array = floats.as_primitive();
        if floats.null_count() > 0 {
            return Ok(None);
        }
        Ok(Some(floats.values().to_vec()))
    };
    (0..array.len())
        .map(row)
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{
        FixedSizeListArray, Float64Array, Int32Array, ListArray, TimestampMicrosecondArray,
        types::Float64Type,
    };
    use arrow_schema::{Field, Schema};

    use super::*;

    #[test]
    fn reads_other_types_and_tells_missing_from_null() {
        let fixed = FixedSizeListArray::try_new(
            Arc::new(Field::new("item", DataType::Float64, true)),
            2,
            Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0, 4.0])),
            Some(vec![true, false].into()),
        )
        .unwrap();
        let list = ListArray::from_iter_primitive::<Float64Type, _, _>(vec![
            Some(vec![Some(0.5), Some(1.5), Some(2.5)]),
            Some(vec![Some(1.0), None]),
        ]);
        let schema = Schema::new(vec![
            Field::new("count", DataType::Int32, true),
            Field::new(
                "at",
                DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new("fixed", fixed.data_type().clone(), true),
            Field::new("list", list.data_type().clone(), true),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int32Array::from(vec![Some(7), None])),
                Arc::new(
                    TimestampMicrosecondArray::from(vec![Some(1_700_000_000_000_000), None])
                        .with_timezone("UTC"),
                ),
                Arc::new(fixed),
                Arc::new(list),
            ],
        )
        .unwrap();
        assert_eq!(
            integers(&batch, "count").unwrap(),
            Some(vec![Some(7), None])
        );
        let at = strings(&batch, "at").unwrap().unwrap();
        assert!(
            at[0].as_deref().unwrap().starts_with("2023-11-14T22:13:20"),
            "{at:?}"
        );
        assert_eq!(at[1], None);
        assert_eq!(
            vectors(&batch, "fixed").unwrap(),
            Some(vec![Some(vec![1.0, 2.0]), None])
        );
        // A vector with a null element is unusable, like a null vector.
        assert_eq!(
            vectors(&batch, "list").unwrap(),
            Some(vec![Some(vec![0.5, 1.5, 2.5]), None])
        );
        assert_eq!(strings(&batch, "absent").unwrap(), None);
        assert!(matches!(
            vectors(&batch, "count"),
            Err(Error::LegacyColumn { .. })
        ));
    }
}
