package io.sdxl4j.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.sdxl4j.GenerationRequest;
import io.sdxl4j.SchedulerKind;
import io.sdxl4j.StableDiffusionXL;
import java.awt.image.BufferedImage;
import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.openqa.selenium.By;
import org.openqa.selenium.OutputType;
import org.openqa.selenium.WebElement;
import org.openqa.selenium.chrome.ChromeDriver;
import org.openqa.selenium.chrome.ChromeDriverService;
import org.openqa.selenium.chrome.ChromeOptions;
import org.openqa.selenium.support.ui.ExpectedConditions;
import org.openqa.selenium.support.ui.Select;
import org.openqa.selenium.support.ui.WebDriverWait;

/**
 * The web page at {@code /} in a real headless browser (Debian's chromium through its chromedriver, driven by
 * Selenium; {@code .ci/run} installs both): type a prompt, set size, steps, seed and sampler, click Generate, wait
 * for the image; it must be a PNG of the asked size equal, pixel for pixel, to the Java API's image for the same
 * parameters, with its infotext shown. A screenshot is kept in target/surefire-reports/web-page.png.
 */
class WebPageBrowserTest {
    private static final Path CHROMIUM = Path.of(System.getProperty("sdxl4j.chromium", "/usr/bin/chromium"));
    private static final Path CHROMEDRIVER = Path.of(System.getProperty("sdxl4j.chromedriver", "/usr/bin/chromedriver"));
    private static Server server;
    private static StableDiffusionXL javaApi;
    private static ChromeDriver browser;

    @BeforeAll
    static void start() {
        if (!Files.isExecutable(CHROMIUM) || !Files.isExecutable(CHROMEDRIVER)) {
            fail("the browser test needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; "
                    + ".ci/run installs them), or -Dsdxl4j.chromium / -Dsdxl4j.chromedriver pointing at them");
        }
        server = TestSupport.start(ServerConfig.defaults(), false);
        javaApi = StableDiffusionXL.load(TestSupport.tinyBase());
        ChromeOptions options = new ChromeOptions();
        options.setBinary(CHROMIUM.toFile());
        // --no-sandbox: CI runs as root, where chromium refuses its sandbox.
        options.addArguments("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1000,1200");
        ChromeDriverService service = new ChromeDriverService.Builder()
                .usingDriverExecutable(new File(CHROMEDRIVER.toString())).usingAnyFreePort().build();
        browser = new ChromeDriver(service, options);
    }

    @AfterAll
    static void stop() {
        if (browser != null) {
            browser.quit();
        }
        if (server != null) {
            server.close();
        }
        if (javaApi != null) {
            javaApi.close();
        }
    }

    private static void type(String id, String text) {
        WebElement e = browser.findElement(By.id(id));
        e.clear();
        e.sendKeys(text);
    }

    @Test
    void typeAPromptClickAndGetTheImage() throws Exception {
        browser.get("http://127.0.0.1:" + server.port() + "/");
        assertEquals("sdxl4j", browser.getTitle());
        WebDriverWait wait = new WebDriverWait(browser, Duration.ofSeconds(120));
        // The sampler list comes from /sdapi/v1/samplers.
        wait.until(d -> new Select(d.findElement(By.id("sampler"))).getOptions().size() > 1);
        type("prompt", "a watercolor fox in the snow");
        type("negative", "blurry");
        type("width", "64");
        type("height", "48");
        type("steps", "4");
        type("cfg", "6");
        type("seed", "4242");
        new Select(browser.findElement(By.id("sampler"))).selectByVisibleText("DPM++ 2M Karras");
        browser.findElement(By.id("generate")).click();

        WebElement img = wait.until(ExpectedConditions.visibilityOfElementLocated(By.id("image")));
        wait.until(d -> "done".equals(d.findElement(By.id("status")).getText()));
        Path shot = Path.of("target/surefire-reports/web-page.png");
        Files.createDirectories(shot.getParent());
        Files.write(shot, browser.getScreenshotAs(OutputType.BYTES));

        String src = img.getAttribute("src");
        assertTrue(src.startsWith("data:image/png;base64,"), src.substring(0, Math.min(40, src.length())));
        BufferedImage got = TestSupport.png(src.substring(src.indexOf(',') + 1), 64, 48);
        BufferedImage expected = javaApi.generate(GenerationRequest.builder().prompt("a watercolor fox in the snow")
                .negativePrompt("blurry").size(48, 64).steps(4).guidanceScale(6).seed(4242L)
                .scheduler(SchedulerKind.DPMPP_2M_KARRAS).build()).image(0);
        TestSupport.assertSamePixels(expected, got, "the page's image");

        String parameters = browser.findElement(By.id("parameters")).getText();
        for (String part : List.of("a watercolor fox in the snow", "Negative prompt: blurry", "Steps: 4",
                "Sampler: DPM++ 2M", "CFG scale: 6", "Seed: 4242", "Size: 64x48")) {
            assertTrue(parameters.contains(part), "infotext shown lacks '" + part + "': " + parameters);
        }
        assertEquals("1", browser.findElement(By.id("progress")).getAttribute("value"));
    }
}
