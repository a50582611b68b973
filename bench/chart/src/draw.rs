//! Draws the chart with plotters' SVG backend: one panel per tree, stacked,
//! each a horizontal bar per copier (median time) on the panel's own linear
//! time axis, a thin line from the fastest to the slowest run, the median
//! written after the bar, and the caption under the last panel.
//!
//! plotters lays out the axes and the bars in data coordinates; the copier
//! names, the times after the bars and the marks on cut bars are placed in
//! pixels next to them, so they may sit outside the plotting area.

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::data::{Bar, ChartData, ChartError, Panel, Role};
use crate::scale::{Unit, axis_limit, extent, format_time};

const WIDTH: u32 = 820;
/// Space around the chart.
const MARGIN: i32 = 20;
/// Room for the copier names left of the bars.
const NAME_WIDTH: i32 = 200;
/// Room for the median after the longest bar.
const VALUE_ROOM: i32 = 70;
/// Title and subtitle of a panel.
const HEADER: i32 = 38;
const ROW: i32 = 21;
const BAR: i32 = 16;
/// Tick labels under a panel.
const AXIS: i32 = 22;
const PANEL_GAP: i32 = 18;
const CAPTION_LINE: i32 = 15;

const FONT: &str = "sans-serif";
const INK: RGBColor = RGBColor(0x22, 0x22, 0x22);
const MUTED: RGBColor = RGBColor(0x55, 0x55, 0x55);
const GRID: RGBColor = RGBColor(0xdd, 0xdd, 0xdd);
const SUBJECT: RGBColor = RGBColor(0xd9, 0x53, 0x4f);
const FLOOR: RGBColor = RGBColor(0x5b, 0x8d, 0xef);
const PEER: RGBColor = RGBColor(0x9a, 0xa5, 0xb1);

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// The whole chart as an SVG document.
pub(crate) fn render(data: &ChartData) -> Result<String, ChartError> {
    let mut svg = String::new();
    {
        let root =
            SVGBackend::with_string(&mut svg, (WIDTH, chart_height(data))).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        let mut top = MARGIN;
        for panel in &data.panels {
            draw_panel(&root, top, panel)?;
            top += panel_height(panel) + PANEL_GAP;
        }
        draw_caption(&root, top, data)?;
        root.present().map_err(draw_error)?;
    }
    Ok(svg)
}

fn draw_error(err: impl std::fmt::Display) -> ChartError {
    ChartError::Draw(err.to_string())
}

fn panel_height(panel: &Panel) -> i32 {
    let rows = i32::try_from(panel.bars.len()).unwrap_or(i32::MAX / ROW);
    HEADER + rows * ROW + AXIS
}

fn caption_lines(data: &ChartData) -> Vec<String> {
    let ranges = data
        .panels
        .iter()
        .flat_map(|panel| &panel.bars)
        .any(|bar| bar.fastest_seconds.is_some() && bar.slowest_seconds.is_some());
    let mut legend =
        String::from("Bars: median time per copy (red: pcopy, blue: the floor program");
    legend += if ranges {
        ", grey: other copiers); lines: fastest to slowest run. Shorter is better."
    } else {
        ", grey: other copiers). Shorter is better."
    };
    let mut lines = vec![legend];
    lines.extend(data.caption.iter().cloned());
    lines
}

fn chart_height(data: &ChartData) -> u32 {
    let panels: i32 = data
        .panels
        .iter()
        .map(|p| panel_height(p) + PANEL_GAP)
        .sum();
    let caption = i32::try_from(caption_lines(data).len()).unwrap_or(0) * CAPTION_LINE;
    u32::try_from(MARGIN + panels + caption + MARGIN).unwrap_or(u32::MAX)
}

/// A text style whose SVG font-size is `pixels`: plotters writes the size it
/// is given divided by 1.24.
fn text(pixels: f64, color: RGBColor) -> TextStyle<'static> {
    (FONT, pixels * 1.24).into_font().color(&color)
}

fn bold(pixels: f64, color: RGBColor) -> TextStyle<'static> {
    (FONT, pixels * 1.24)
        .into_font()
        .style(FontStyle::Bold)
        .color(&color)
}

fn anchored(style: TextStyle<'static>, h_pos: HPos) -> TextStyle<'static> {
    style.pos(Pos::new(h_pos, VPos::Center))
}

/// Displayable text: no control characters, which SVG cannot hold.
fn clean(label: &str) -> String {
    label
        .chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

fn draw_panel(root: &Area, top: i32, panel: &Panel) -> Result<(), ChartError> {
    let height = panel_height(panel);
    let area = root.clone().shrink((0, top), (WIDTH, height as u32));
    draw_header(&area, panel)?;
    let body = area.shrink((0, HEADER), (WIDTH, (height - HEADER) as u32));

    let limit = axis_limit(&panel.bars);
    let unit = Unit::for_limit(limit);
    let rows = panel.bars.len() as f64;
    let mut chart = ChartBuilder::on(&body)
        .margin_left(MARGIN + NAME_WIDTH)
        .margin_right(VALUE_ROOM)
        .x_label_area_size(AXIS)
        .build_cartesian_2d(0.0..limit, 0.0..rows)
        .map_err(draw_error)?;
    let tick_label = |seconds: &f64| unit.tick_label(*seconds);
    chart
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .x_labels(6)
        .x_label_formatter(&tick_label)
        .x_label_style(text(10.0, MUTED))
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .axis_style(MUTED)
        .draw()
        .map_err(draw_error)?;

    for (index, bar) in panel.bars.iter().enumerate() {
        // Row 0 is at the top: plotters' y axis points up.
        let row_top = rows - index as f64;
        let placed = PlacedBar::new(&chart, bar, row_top, limit);
        placed.draw_bar(&chart, bar)?;
        placed.draw_labels(root, bar)?;
    }
    Ok(())
}

fn draw_header(area: &Area, panel: &Panel) -> Result<(), ChartError> {
    let title = Text::new(clean(&panel.title), (MARGIN, 2), bold(13.0, INK));
    area.draw(&title).map_err(draw_error)?;
    let subtitle = Text::new(clean(&panel.subtitle), (MARGIN, 19), text(11.0, MUTED));
    area.draw(&subtitle).map_err(draw_error)
}

type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Where one bar lands, in data units and in pixels.
struct PlacedBar {
    /// Bottom and top of the bar in data units.
    low: f64,
    high: f64,
    /// Bar length in seconds, at most the axis limit.
    length: f64,
    /// Whether the bar runs off the axis (a slowest run beyond the axis
    /// only has its line stop at the axis end).
    cut: bool,
    limit: f64,
    /// Pixel x where the bars start, where the bar or its slowest run ends
    /// (at most the axis end), and the vertical middle of the row.
    origin_x: i32,
    end_x: i32,
    middle_y: i32,
}

impl PlacedBar {
    fn new(chart: &Chart, bar: &Bar, row_top: f64, limit: f64) -> Self {
        let inset = f64::from(ROW - BAR) / 2.0 / f64::from(ROW);
        let (origin_x, middle_y) = chart.backend_coord(&(0.0, row_top - 0.5));
        let (end_x, _) = chart.backend_coord(&(extent(bar).min(limit), row_top - 0.5));
        Self {
            low: row_top - 1.0 + inset,
            high: row_top - inset,
            length: bar.median_seconds.min(limit),
            cut: bar.median_seconds > limit,
            limit,
            origin_x,
            end_x,
            middle_y,
        }
    }

    fn draw_bar(&self, chart: &Chart, bar: &Bar) -> Result<(), ChartError> {
        let fill = match bar.role {
            Role::Subject => SUBJECT,
            Role::Floor => FLOOR,
            Role::Peer => PEER,
        };
        let rect = Rectangle::new([(0.0, self.low), (self.length, self.high)], fill.filled());
        chart.plotting_area().draw(&rect).map_err(draw_error)?;
        if let (Some(fastest), Some(slowest), false) =
            (bar.fastest_seconds, bar.slowest_seconds, self.cut)
        {
            let middle = (self.low + self.high) / 2.0;
            let range = PathElement::new(
                vec![(fastest, middle), (slowest.min(self.limit), middle)],
                INK.stroke_width(1),
            );
            chart.plotting_area().draw(&range).map_err(draw_error)?;
        }
        Ok(())
    }

    /// The copier's name left of the bar, its median right of it, and two
    /// white strokes across the end of a cut bar.
    fn draw_labels(&self, root: &Area, bar: &Bar) -> Result<(), ChartError> {
        let name_style = match bar.role {
            Role::Subject => bold(11.0, INK),
            Role::Floor | Role::Peer => text(11.0, INK),
        };
        let name = Text::new(
            clean(&bar.copier),
            (self.origin_x - 6, self.middle_y),
            anchored(name_style, HPos::Right),
        );
        root.draw(&name).map_err(draw_error)?;
        if self.cut {
            let half = BAR / 2;
            for offset in [14, 8] {
                let slash = PathElement::new(
                    vec![
                        (self.end_x - offset, self.middle_y - half),
                        (self.end_x - offset + 6, self.middle_y + half),
                    ],
                    WHITE.stroke_width(3),
                );
                root.draw(&slash).map_err(draw_error)?;
            }
        }
        let value = Text::new(
            format_time(bar.median_seconds),
            (self.end_x + 6, self.middle_y),
            anchored(text(11.0, INK), HPos::Left),
        );
        root.draw(&value).map_err(draw_error)
    }
}

fn draw_caption(root: &Area, top: i32, data: &ChartData) -> Result<(), ChartError> {
    for (line_number, line) in caption_lines(data).iter().enumerate() {
        let y = top + i32::try_from(line_number).unwrap_or(0) * CAPTION_LINE;
        root.draw(&Text::new(clean(line), (MARGIN, y), text(10.0, MUTED)))
            .map_err(draw_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Bar;

    fn bar(copier: &str, role: Role, median: f64, range: Option<(f64, f64)>) -> Bar {
        Bar {
            copier: copier.into(),
            role,
            median_seconds: median,
            fastest_seconds: range.map(|(fastest, _)| fastest),
            slowest_seconds: range.map(|(_, slowest)| slowest),
        }
    }

    fn chart(bars: Vec<Bar>) -> ChartData {
        ChartData {
            caption: vec!["2 CPUs (test)".into()],
            panels: vec![Panel {
                title: "Small files".into(),
                subtitle: "300 files".into(),
                bars,
            }],
        }
    }

    #[test]
    fn draws_every_copier_with_its_median_and_the_caption() {
        let data = chart(vec![
            bar("pcopy", Role::Subject, 0.3, Some((0.28, 0.35))),
            bar("floor (atomic)", Role::Floor, 0.2, Some((0.19, 0.22))),
            bar("cp -a", Role::Peer, 0.55, Some((0.5, 0.6))),
        ]);
        let svg = render(&data).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        for expected in [
            "pcopy",
            "floor (atomic)",
            "cp -a",
            "300 ms",
            "550 ms",
            "2 CPUs (test)",
        ] {
            assert!(svg.contains(expected), "no {expected:?} in the chart");
        }
        assert!(svg.contains("lines: fastest to slowest run"));
        assert!(
            svg.contains("#D9534F") || svg.contains("#d9534f"),
            "pcopy is not red"
        );
    }

    #[test]
    fn a_far_outlier_is_cut_and_labelled_and_others_keep_the_axis() {
        let data = chart(vec![
            bar("pcopy", Role::Subject, 0.3, None),
            bar("seed (Python Pool)", Role::Peer, 25.8, None),
        ]);
        let svg = render(&data).unwrap();
        assert!(svg.contains("25.8 s"));
        // The axis is in milliseconds: it ends near pcopy's bar, not the seed's.
        assert!(svg.contains("300 ms"));
        assert!(!svg.contains("lines: fastest to slowest run"));
    }

    #[test]
    fn markup_and_control_characters_in_names_stay_text() {
        let data = chart(vec![bar("a<b>&\u{1}c", Role::Peer, 1.0, None)]);
        let svg = render(&data).unwrap();
        assert!(svg.contains("a&lt;b&gt;&amp;\u{fffd}c"), "{svg}");
    }

    #[test]
    fn height_grows_with_the_panels() {
        let one = chart(vec![bar("pcopy", Role::Subject, 1.0, None)]);
        let mut two = chart(vec![bar("pcopy", Role::Subject, 1.0, None)]);
        two.panels.push(Panel {
            title: "Big files".into(),
            subtitle: String::new(),
            bars: vec![bar("pcopy", Role::Subject, 2.0, None)],
        });
        assert!(chart_height(&two) > chart_height(&one));
    }
}
