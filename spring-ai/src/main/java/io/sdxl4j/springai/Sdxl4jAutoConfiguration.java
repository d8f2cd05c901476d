package io.sdxl4j.springai;

import io.sdxl4j.StableDiffusionXL;
import org.springframework.ai.image.ImageModel;
import org.springframework.boot.autoconfigure.AutoConfiguration;
import org.springframework.boot.autoconfigure.condition.ConditionalOnClass;
import org.springframework.boot.autoconfigure.condition.ConditionalOnMissingBean;
import org.springframework.boot.autoconfigure.condition.ConditionalOnProperty;
import org.springframework.boot.context.properties.EnableConfigurationProperties;
import org.springframework.context.annotation.Bean;

/**
 * Spring Boot auto-configuration: with {@code sdxl4j.model} set, an {@link Sdxl4jImageModel} bean (a Spring AI
 * {@link ImageModel}) on that model, loaded as the {@link Sdxl4jProperties sdxl4j.*} properties say and closed with
 * the context. An application's own {@code Sdxl4jImageModel} bean replaces it.
 */
@AutoConfiguration
@ConditionalOnClass({ImageModel.class, StableDiffusionXL.class})
@ConditionalOnProperty(prefix = "sdxl4j", name = "model")
@EnableConfigurationProperties(Sdxl4jProperties.class)
public class Sdxl4jAutoConfiguration {
    @Bean(destroyMethod = "close")
    @ConditionalOnMissingBean
    public Sdxl4jImageModel sdxl4jImageModel(Sdxl4jProperties properties) {
        return Sdxl4jImageModel.load(properties.getModel(), properties.pipelineOptions(), properties.getOptions());
    }
}
