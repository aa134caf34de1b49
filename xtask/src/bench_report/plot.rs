//! The SVG plots (plotters' SVG backend: text is written as SVG `<text>`, no font files).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use anyhow::{Result, anyhow};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::markdown::{rules_label, system_label};
use super::rows::{Kind, Outcome, Row, scenario_info, system_order};
use super::targets::{HEADLINE_RULES, groups, none_ns, ratio};

const WIDTH: u32 = 860;
const HEIGHT: u32 = 440;

fn color(system: &str) -> RGBColor {
    match system {
        "none" => RGBColor(150, 150, 150),
        "floor" => RGBColor(200, 200, 200),
        "nemoclaw" => RGBColor(31, 119, 180),
        "nemoclaw-daemon" => RGBColor(23, 190, 207),
        "landlock" => RGBColor(255, 127, 14),
        "apparmor" => RGBColor(148, 103, 189),
        _ => RGBColor(140, 86, 75),
    }
}

/// One bar series: a legend label, its system (the colour) and (category, ratio) bars.
struct Series {
    label: String,
    system: String,
    bars: Vec<(usize, f64)>,
}

/// Grouped bars: `categories` along x, one bar per series in each, the ratio to no
/// enforcement up the y axis with a line at 1.0.
fn bars(title: &str, x_desc: &str, categories: &[String], series: &[Series]) -> Result<String> {
    let mut svg = String::new();
    draw(&mut svg, title, x_desc, categories, series)
        .map_err(|e| anyhow!("plotting {title}: {e}"))?;
    Ok(svg)
}

fn draw(
    svg: &mut String,
    title: &str,
    x_desc: &str,
    categories: &[String],
    series: &[Series],
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::with_string(svg, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let top = series
        .iter()
        .flat_map(|s| s.bars.iter().map(|b| b.1))
        .fold(1.0_f64, f64::max);
    let n = categories.len().max(1);
    // Headroom above the tallest bar for the legend (about 20 px a line of a 360 px plot).
    #[expect(clippy::cast_precision_loss, reason = "a handful of series")]
    let legend_share = (0.1 + 0.06 * series.len() as f64).min(0.6);
    #[expect(clippy::cast_precision_loss, reason = "a handful of categories")]
    let right = n as f64 - 0.5;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(-0.5_f64..right, 0.0_f64..top / (1.0 - legend_share))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_max_light_lines(1)
        .x_labels(0)
        .x_desc(x_desc)
        .y_desc("cost per operation / none's")
        .y_label_formatter(&|y| format!("{y:.2}"))
        .label_style(("sans-serif", 16))
        .draw()?;
    #[expect(clippy::cast_precision_loss, reason = "a handful of series")]
    let width = 0.8 / series.len().max(1) as f64;
    for (j, s) in series.iter().enumerate() {
        let c = color(&s.system);
        #[expect(clippy::cast_precision_loss, reason = "a handful of series")]
        let offset = -0.4 + width * j as f64;
        let rects = s.bars.iter().map(move |(i, ratio)| {
            #[expect(clippy::cast_precision_loss, reason = "a handful of categories")]
            let x = *i as f64 + offset;
            Rectangle::new([(x, 0.0), (x + width * 0.9, *ratio)], c.filled())
        });
        let absent = s.bars.is_empty();
        chart
            .draw_series(rects)?
            .label(s.label.clone())
            .legend(move |(x, y)| {
                let style = if absent {
                    c.stroke_width(1)
                } else {
                    c.filled()
                };
                Rectangle::new([(x, y - 5), (x + 10, y + 5)], style)
            });
    }
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(-0.5, 1.0), (right, 1.0)],
        BLACK.stroke_width(1),
    )))?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    let style = ("sans-serif", 16)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Top));
    for (i, label) in categories.iter().enumerate() {
        #[expect(clippy::cast_precision_loss, reason = "a handful of categories")]
        let (px, py) = chart.backend_coord(&(i as f64, 0.0));
        root.draw(&Text::new(label.clone(), (px, py + 6), style.clone()))?;
    }
    root.present()?;
    Ok(())
}

/// Whether `scenario` gets a ratio plot: timed rows and a row without enforcement.
pub fn plotted(rows: &[Row], scenario: &str) -> bool {
    groups(rows)
        .iter()
        .any(|(s, place)| s == scenario && none_ns(rows, s, place).is_some())
}

/// The label of a series: the system, and the place when the scenario ran in several.
fn series_label(system: &str, place: &str, several: bool) -> String {
    if several {
        format!("{} ({place})", system_label(system))
    } else {
        system_label(system).to_string()
    }
}

/// `docs/bench/<scenario>.svg`: the ratio to none per rule count, one bar per system.
pub fn scenario_plot(rows: &[Row], scenario: &str) -> Result<String> {
    let places: BTreeSet<&str> = rows
        .iter()
        .filter(|r| r.scenario == scenario && none_ns(rows, scenario, &r.place).is_some())
        .map(|r| r.place.as_str())
        .collect();
    let these: Vec<&Row> = rows
        .iter()
        .filter(|r| r.scenario == scenario && places.contains(r.place.as_str()))
        .collect();
    let rules: BTreeSet<u64> = these.iter().map(|r| r.rules).collect();
    let rules: Vec<u64> = rules.into_iter().collect();
    let categories: Vec<String> = rules
        .iter()
        .map(|r| {
            if *r == 0 {
                "0 (none, floor)".to_string()
            } else {
                rules_label(*r)
            }
        })
        .collect();
    let mut keys: Vec<(&str, &str)> = these
        .iter()
        .map(|r| (r.system.as_str(), r.place.as_str()))
        .collect();
    keys.sort_by(|a, b| {
        system_order(a.0)
            .cmp(&system_order(b.0))
            .then(a.0.cmp(b.0))
            .then(a.1.cmp(b.1))
    });
    keys.dedup();
    let several = places.len() > 1;
    let series: Vec<Series> = keys
        .iter()
        .map(|(system, place)| {
            let mine: Vec<&&Row> = these
                .iter()
                .filter(|r| r.system == *system && r.place == *place)
                .collect();
            let mut bars: Vec<(usize, f64)> = mine
                .iter()
                .filter_map(|r| {
                    let i = rules.iter().position(|x| *x == r.rules)?;
                    Some((i, ratio(rows, r)?))
                })
                .collect();
            bars.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
            let missing: Vec<String> = mine
                .iter()
                .filter(|r| matches!(r.outcome, Outcome::Unsupported(_)))
                .map(|r| rules_label(r.rules))
                .collect();
            let mut label = series_label(system, place, several);
            if !missing.is_empty() {
                let _ = write!(label, ": cannot express {} rules", missing.join(", "));
            }
            Series {
                label,
                system: (*system).to_string(),
                bars,
            }
        })
        .collect();
    let title = match scenario_info(scenario) {
        Some((_, title)) => format!("{scenario}: {title}"),
        None => scenario.to_string(),
    };
    bars(&title, "rules", &categories, &series)
}

/// `docs/bench/overview.svg`: the ratio to none at 1k rules (the floor: its only row) for
/// every timed scenario, one bar per system.
pub fn overview_plot(rows: &[Row]) -> Result<String> {
    let cats: Vec<(String, String)> = groups(rows)
        .into_iter()
        .filter(|(s, p)| {
            matches!(scenario_info(s), Some((Kind::Micro | Kind::Macro, _)))
                && none_ns(rows, s, p).is_some()
        })
        .collect();
    let several_places = {
        let places: BTreeSet<&str> = cats.iter().map(|(_, p)| p.as_str()).collect();
        places.len() > 1
    };
    let categories: Vec<String> = cats
        .iter()
        .map(|(s, p)| {
            if several_places {
                format!("{s} ({p})")
            } else {
                s.clone()
            }
        })
        .collect();
    let mut systems: Vec<&str> = rows
        .iter()
        .filter(|r| r.system != "none")
        .map(|r| r.system.as_str())
        .collect();
    systems.sort_by(|a, b| system_order(a).cmp(&system_order(b)).then(a.cmp(b)));
    systems.dedup();
    let series = systems
        .iter()
        .map(|system| {
            let rules = if *system == "floor" {
                0
            } else {
                HEADLINE_RULES
            };
            let mut bars = Vec::new();
            let mut missing = Vec::new();
            for (i, (s, p)) in cats.iter().enumerate() {
                let row = rows.iter().find(|r| {
                    r.scenario == *s && r.place == *p && r.system == *system && r.rules == rules
                });
                match row {
                    Some(r) if matches!(r.outcome, Outcome::Unsupported(_)) => {
                        missing.push(s.clone());
                    }
                    Some(r) => bars.extend(ratio(rows, r).map(|x| (i, x))),
                    None => {}
                }
            }
            let mut label = system_label(system).to_string();
            if !missing.is_empty() {
                let _ = write!(label, ": cannot express {}", missing.join(", "));
            } else if bars.is_empty() {
                let _ = write!(label, ": not measured at {} rules", rules_label(rules));
            }
            Series {
                label,
                system: (*system).to_string(),
                bars,
            }
        })
        .collect::<Vec<_>>();
    bars(
        &format!(
            "cost per operation relative to none, at {} rules",
            rules_label(HEADLINE_RULES)
        ),
        "scenario",
        &categories,
        &series,
    )
}
