//! Policies set through the API, one JSON document per instance. What a
//! policy means (and validating it) belongs to its user; the catalog keeps
//! the document and gives it back as it came.

use std::collections::BTreeMap;

use rusqlite::params;

use super::row::RowReader;
use super::{Catalog, CatalogError, millis};

impl Catalog {
    /// Sets the instance's policy, replacing the one it had.
    pub fn set_policy(
        &self,
        instance: &str,
        policy: &serde_json::Value,
    ) -> Result<(), CatalogError> {
        self.conn()
            .execute(
                "INSERT INTO policies (instance, policy, updated_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (instance) DO UPDATE SET policy = excluded.policy, \
                 updated_at = excluded.updated_at",
                params![instance, policy.to_string(), millis(jiff::Timestamp::now())],
            )
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// Removes the instance's policy; returns whether it had one.
    pub fn remove_policy(&self, instance: &str) -> Result<bool, CatalogError> {
        let changed = self
            .conn()
            .execute("DELETE FROM policies WHERE instance = ?1", [instance])
            .map_err(|e| self.sql(e))?;
        Ok(changed > 0)
    }

    pub fn get_policy(&self, instance: &str) -> Result<Option<serde_json::Value>, CatalogError> {
        Ok(self
            .select_policies(" WHERE instance = ?1", [instance])?
            .into_values()
            .next())
    }

    /// Every instance's policy, by instance name.
    pub fn get_all_policies(&self) -> Result<BTreeMap<String, serde_json::Value>, CatalogError> {
        self.select_policies("", [])
    }

    fn select_policies(
        &self,
        sql: &str,
        args: impl rusqlite::Params,
    ) -> Result<BTreeMap<String, serde_json::Value>, CatalogError> {
        let rows = self.select_rows(
            &format!("SELECT instance, policy FROM policies{sql}"),
            args,
            |row| {
                let r = RowReader::new(&self.path, "policies", row)?;
                let text: String = r.get(1)?;
                let policy = serde_json::from_str(&text)
                    .map_err(|e| r.bad(1, format!("holds invalid JSON: {e}")))?;
                Ok((r.id, policy))
            },
        )?;
        Ok(rows.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn policies_are_set_replaced_listed_and_removed() {
        let cat = Catalog::open_in_memory().unwrap();
        assert_eq!(cat.get_policy("orders").unwrap(), None);
        assert!(cat.get_all_policies().unwrap().is_empty());
        let orders = json!({"keep_days": 7, "weekdays": ["mon", "thu"], "window": "02:00-03:00"});
        cat.set_policy("orders", &orders).unwrap();
        cat.set_policy("users", &json!({"keep_days": 3})).unwrap();
        assert_eq!(cat.get_policy("orders").unwrap(), Some(orders.clone()));
        let replaced = json!({"keep_days": 30});
        cat.set_policy("users", &replaced).unwrap();
        let all = cat.get_all_policies().unwrap();
        assert_eq!(
            all.into_iter().collect::<Vec<_>>(),
            vec![
                ("orders".to_string(), orders),
                ("users".to_string(), replaced)
            ]
        );
        assert!(cat.remove_policy("users").unwrap());
        assert!(!cat.remove_policy("users").unwrap());
        assert_eq!(cat.get_policy("users").unwrap(), None);
    }

    #[test]
    fn a_policy_that_is_not_json_in_the_file_is_an_error_naming_the_row() {
        let cat = Catalog::open_in_memory().unwrap();
        cat.conn()
            .execute("INSERT INTO policies VALUES ('orders', '{not json', 0)", [])
            .unwrap();
        let err = cat.get_policy("orders").unwrap_err().to_string();
        assert!(
            err.contains("policies, row `orders`: column policy"),
            "{err}"
        );
        assert!(cat.get_all_policies().is_err());
    }
}
